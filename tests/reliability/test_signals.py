"""SIGTERM / Ctrl-C on the real command: finish the step, checkpoint, exit 0 naming the checkpoint; a
second Ctrl-C exits at once; on 2 ranks (torchrun, gloo) both ranks stop at the same step and exit 0.

Each process is held inside a step with ATLAS_INJECT_HANG_AT_STEP so the signal lands mid-step.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from reliability_proc import Train, child_env, config_file
from train_helpers import REPO, TINY

from atlas.engine.checkpoint import CheckpointStore, verify

RUN = ["training.max_steps=30", "training.checkpoint_interval=10", "training.log_interval=1", "training.val_interval=0"]


def _checkpoint_step(path) -> int:
    return int(re.search(r"step_(\d+)", str(path)).group(1))


@pytest.mark.timeout(120)
def test_sigterm_mid_step_finishes_the_step_checkpoints_and_exits_0(tmp_path):
    run = Train(tmp_path / "run", RUN, ATLAS_INJECT_HANG_AT_STEP="6:2")
    run.wait_for(lambda: "injected hang" in run.new_log(), label="the hang in step 6")
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait(90) == 0, run.stderr()[-3000:]
    err = run.stderr()
    stopped = re.search(r"stopped after step (\d+); checkpoint (\S+);", err)
    assert stopped, err[-3000:]
    step, path = int(stopped.group(1)), stopped.group(2)
    # the signal arrives during step 6; ranks agree on stopping at the next step's all-reduce
    assert step in (6, 7) and _checkpoint_step(path) == step
    latest = CheckpointStore(tmp_path / "run/checkpoints").pointer("latest")
    assert str(latest) == path and verify(latest) is None
    assert json.loads((latest / "trainer_state.json").read_text())["step"] == step
    assert run.last_step() == step  # metrics flushed up to the stopping step
    assert "continue with --resume auto" in (tmp_path / "run/train.log").read_text()


@pytest.mark.timeout(120)
def test_second_ctrl_c_exits_at_once(tmp_path):
    run = Train(tmp_path / "run", RUN, ATLAS_INJECT_HANG_AT_STEP="6:300")
    run.wait_for(lambda: "injected hang" in run.new_log(), label="the hang in step 6")
    run.proc.send_signal(signal.SIGINT)
    run.wait_for(lambda: "Ctrl-C again to exit at once" in run.stderr(), label="the first Ctrl-C's message")
    started = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    rc = run.wait(30)
    assert rc == -signal.SIGINT and time.monotonic() - started < 10, (rc, run.stderr()[-2000:])
    assert not (tmp_path / "run/checkpoints/step_00000006").exists()  # no checkpoint: it did not wait for the step


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigterm_to_one_rank_of_torchrun_stops_both_ranks_at_the_same_step(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "atlas.train",
           "--config", str(config_file(tmp_path / "cfg")), "--output-dir", str(run_dir), *TINY, *RUN]
    log = tmp_path / "torchrun.err"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=child_env(ATLAS_INJECT_HANG_AT_STEP="4:3"), stdout=err, stderr=err,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while len(re.findall(r"injected hang.*rank 1, pid (\d+)", log.read_text())) < 1:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.05)
            rank1 = int(re.search(r"injected hang.*rank 1, pid (\d+)", log.read_text()).group(1))
            os.kill(rank1, signal.SIGTERM)  # one rank only, as a node-local preemption would
            rc = proc.wait(180)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert rc == 0, text[-3000:]  # torchrun exits 0 only if both workers did
    stops = re.findall(r"stop requested \((\w+|by another rank)\): stopped after step (\d+)", text)
    assert len(stops) == 2 and len({s[1] for s in stops}) == 1, text[-3000:]
    assert sorted(s[0] for s in stops) == ["SIGTERM", "by another rank"], stops
    step = int(stops[0][1])
    latest = CheckpointStore(run_dir / "checkpoints").pointer("latest")
    assert latest.name == f"step_{step:08d}" and verify(latest) is None
    assert sorted(p.name for p in (latest / "rng").iterdir()) == ["rank_0.pt", "rank_1.pt"]
