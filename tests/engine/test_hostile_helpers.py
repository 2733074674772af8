"""The pieces the loop calls to stay safe with hostile input: the run-folder lock (real processes), the
non-finite weight check (a real optimizer update), the `best` rule, and the resume shape comparison."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from atlas.config.errors import ConfigError
from atlas.engine.compat import check_resume_compatible
from atlas.engine.finite import improves, nonfinite_parameters
from atlas.engine.run_lock import LOCK_NAME, RunFolderLocked, hold_run_folder

HOLDER = ("import sys, time\nfrom atlas.engine.run_lock import hold_run_folder\n"
          "with hold_run_folder(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


@pytest.mark.timeout(120)
def test_a_second_holder_is_refused_by_pid_and_a_dead_holders_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(__import__("train_helpers").REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(RunFolderLocked, match=f"PID {holder.pid} on "):
            with hold_run_folder(run):
                pass
        holder.kill()  # SIGKILL: no cleanup ran, the lock file still names the dead process
        holder.wait()
        assert str(holder.pid) in (run / LOCK_NAME).read_text()
        notes: list[str] = []
        with hold_run_folder(run, log=notes.append) as lock:
            assert str(os.getpid()) in lock.read_text()
        assert notes and f"PID {holder.pid}" in notes[0] and "stale" in notes[0]
        assert not (run / LOCK_NAME).exists()  # released and removed on exit
    finally:
        holder.kill()
        holder.wait()


def test_a_folder_the_lock_created_is_removed_if_the_run_left_it_empty(tmp_path):
    with hold_run_folder(tmp_path / "new"):
        assert (tmp_path / "new").is_dir()
    assert not (tmp_path / "new").exists()
    with hold_run_folder(tmp_path / "kept"):
        (tmp_path / "kept" / "train.log").write_text("x")
    assert (tmp_path / "kept" / "train.log").exists()


def test_nan_weights_produced_by_an_update_are_named():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e30)
    model(torch.ones(5, 3)).pow(2).sum().mul(1e10).backward()  # finite gradients, an update that overflows
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert nonfinite_parameters(model.named_parameters()) == []
    optimizer.step()
    bad = nonfinite_parameters(model.named_parameters())
    assert bad and set(bad) <= {n for n, _ in model.named_parameters()}


def test_best_never_follows_a_nan_metric():
    assert not improves(math.nan, None) and not improves(math.inf, 1.0) and not improves(None, 1.0)
    assert improves(0.5, None) and improves(0.5, 1.0) and not improves(1.5, 1.0)
    assert improves(2.0, math.nan)  # a NaN best (from an older run) is replaced by the first finite metric


def test_resuming_into_another_width_names_the_tensors_and_model_pretrained(tmp_path):
    saved = nn.Sequential(nn.Linear(6, 32), nn.Linear(32, 3))
    save_file({k: v.contiguous() for k, v in saved.state_dict().items()}, str(tmp_path / "model.safetensors"))
    check_resume_compatible(tmp_path, saved)  # the same model: nothing to say
    with pytest.raises(ConfigError) as err:
        check_resume_compatible(tmp_path, nn.Sequential(nn.Linear(6, 64), nn.Linear(64, 3)))
    message = str(err.value)
    assert "0.weight: [32, 6] in the checkpoint, [64, 6] configured" in message and "model.pretrained" in message
