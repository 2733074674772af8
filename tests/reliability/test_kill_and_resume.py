"""kill -9 anywhere, then `--resume auto`: the final weights equal an uninterrupted run's, bit for bit.

One run folder is killed at seeded random points (mid-step, mid-validation, inside the checkpoint
save at each of its phases, and at a random moment), resumed after each kill, and finally run to the
end. Every kill is a real SIGKILL of `python -m atlas.train`; the injectors only make it pause at the
chosen place first so the kill lands there deterministically.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
import torch
from reliability_proc import Train
from safetensors.torch import load_file
from train_helpers import assert_resumed_at

from atlas.engine.checkpoint import CheckpointStore, verify

INTERVAL = 5
MAX_STEPS = 80
VAL = 4
RUN = [f"training.max_steps={MAX_STEPS}", f"training.checkpoint_interval={INTERVAL}", f"training.val_interval={VAL}",
       "training.log_interval=1", "training.lr_scheduler=cosine", "training.warmup_steps=3", "training.ema.enabled=true",
       "model.dropout=0.1", "data.state_noise_snr=30", "data.num_episodes=12"]
KINDS = ["step", "validation", "save:files", "save:rename", "save:pointer", "random"]


def _newest(run_dir: Path) -> int:
    found = CheckpointStore(run_dir / "checkpoints").newest_complete()
    return int(found.name.split("_")[1]) if found else 0


def _kill_once(run_dir: Path, kind: str, rng: random.Random, resumed: int) -> dict:
    """Start (or resume) the run, stop it at `kind`, SIGKILL it; what happened, for the report. `resumed`:
    the step of the newest complete checkpoint on disk, which `--resume auto` must continue from."""
    start = rng.randint(resumed + 1, resumed + 6)
    env: dict[str, str] = {}
    if kind == "step":
        env["ATLAS_INJECT_HANG_AT_STEP"] = f"{start}:600"
    elif kind == "validation":
        start = start + (-start) % VAL
        env["ATLAS_INJECT_HANG_AT_STEP"] = f"{start}:600:val"
    elif kind.startswith("save:"):
        env["ATLAS_INJECT_KILL_IN_SAVE"] = f"{rng.randint(1, 2)}:{kind.split(':')[1]}"
    run = Train(run_dir, RUN, resume="auto", **env)  # the first one starts fresh: nothing to resume yet
    try:
        if kind == "random":
            run.wait_for(lambda: run.last_step() >= start, label=f"step {start}")
            time.sleep(rng.uniform(0.0, 0.05))
        else:
            marker = "injected pause in the save" if kind.startswith("save:") else "injected hang"
            run.wait_for(lambda: marker in run.new_log(), label=marker)
    finally:
        run.proc.send_signal(signal.SIGKILL)
        rc = run.wait()
    assert rc == -signal.SIGKILL
    # where this process picked up, from its own resume record (not from what is on disk now)
    written = run.new_metrics()
    assert_resumed_at(written, resumed, trained=False)
    resumed_from = _resumed_from(written)
    return {"kind": kind, "resumed_from": resumed_from, "completed": max(resumed_from, run.last_step()),
            "on_disk": _newest(run_dir)}


def _resumed_from(records: list[dict]) -> int:
    """The step a process's own resume record names (0: it started fresh)."""
    return next((r["resumed_from_step"] for r in records if "resumed_from_step" in r), 0)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_kill_minus_9_anywhere_then_resume_is_bitwise_equal(tmp_path):
    reference = Train(tmp_path / "reference", RUN)  # runs beside the kill chain
    rng = random.Random(20240609)
    kinds = KINDS[:]
    rng.shuffle(kinds)
    run_dir = tmp_path / "killed"
    kills = []
    for kind in kinds:
        kills.append(_kill_once(run_dir, kind, rng, kills[-1]["on_disk"] if kills else 0))
        # never a half-written checkpoint as the resume point
        if kills[-1]["on_disk"]:
            assert verify(CheckpointStore(run_dir / "checkpoints").newest_complete()) is None
    final = Train(run_dir, RUN, resume="auto")
    assert final.wait() == 0, final.stderr()[-3000:]
    assert_resumed_at(final.new_metrics(), kills[-1]["on_disk"])
    assert reference.wait() == 0, reference.stderr()[-3000:]
    # steps lost to each kill: what it had completed minus where the next process resumed (its own record),
    # never more than one checkpoint interval
    next_start = [k["resumed_from"] for k in kills[1:]] + [_resumed_from(final.new_metrics())]
    for kill, resumed_at in zip(kills, next_start, strict=True):
        kill["lost"] = kill["completed"] - resumed_at
        assert 0 <= kill["lost"] <= INTERVAL, kills
    print("kills:", kills)
    assert {k["kind"] for k in kills} == set(KINDS)
    for name in ("model.safetensors", "ema/model.safetensors"):
        a = load_file(str(tmp_path / "reference/checkpoints/latest" / name))
        b = load_file(str(run_dir / "checkpoints/latest" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert (run_dir / "checkpoints/latest").resolve().name == f"step_{MAX_STEPS:08d}"
    assert not list((run_dir / "checkpoints").glob(".tmp-*")), "a killed save's temp folder was left behind"
