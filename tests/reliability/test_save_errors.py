"""A checkpoint that cannot be written (disk full, unwritable path) leaves earlier checkpoints and
`latest` intact, says how much space it needs, and stops or continues per training.on_save_error.

ENOSPC is raised inside CheckpointStore.commit while the manifest is being written
(ATLAS_INJECT_ENOSPC_AT_STEP), after every other file of the checkpoint went through the real writers.
"""

from __future__ import annotations

import os
import re

import pytest
import torch
from train_helpers import assert_resumed_at, final_weights, read_metrics, train_run

from atlas.engine.checkpoint import CheckpointStore, SaveFailed, verify

RUN = ["training.max_steps=12", "training.checkpoint_interval=4", "training.val_interval=0", "training.log_interval=1"]
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def _files_bytes(folder) -> int:
    """The bytes of a checkpoint's files, walked here rather than taken from the implementation's own
    counter: every file but manifest.json (the manifest lists the others; the message sizes what they hold)."""
    return sum(os.stat(os.path.join(d, f)).st_size for d, _, names in os.walk(folder) for f in names if f != "manifest.json")


@pytest.mark.timeout(120)
def test_disk_full_stops_keeps_latest_and_says_how_much_space_is_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INJECT_ENOSPC_AT_STEP", "8")
    with pytest.raises(SaveFailed) as caught:
        train_run(tmp_path / "run", RUN)
    message = str(caught.value)
    store = CheckpointStore(tmp_path / "run/checkpoints")
    latest = store.pointer("latest")
    assert latest.name == "step_00000004" and verify(latest) is None
    assert [p.name for p in store.step_dirs()] == ["step_00000004"]
    assert not list(store.root.glob(".tmp-*")), "the failed save's temp folder was left taking space"
    assert "could not write checkpoint step_00000008" in message and "No space left on device" in message
    needed = re.search(r"needs about ([\d.]+) (B|KiB|MiB|GiB) \(the size of step_00000004\)", message)
    assert needed, message
    # the message rounds to one decimal of its unit: within half a unit's tenth of the walked size
    size, unit = float(needed.group(1)) * UNITS[needed.group(2)], UNITS[needed.group(2)]
    assert abs(size - _files_bytes(latest)) <= 0.05 * unit + 0.5, (message, _files_bytes(latest))
    assert re.search(r"[\d.]+ \w*B free on ", message) and "latest is still step_00000004, intact" in message
    assert "training.on_save_error=stop" in message
    # after freeing space the run continues from the intact checkpoint to the same end as an uninterrupted one
    monkeypatch.delenv("ATLAS_INJECT_ENOSPC_AT_STEP")
    before = len(read_metrics(tmp_path / "run"))
    resumed = train_run(tmp_path / "run", RUN, resume="auto")
    assert resumed["final_step"] == 12 and resumed["resumed_from_step"] == 4
    assert_resumed_at(read_metrics(tmp_path / "run")[before:], 4)
    train_run(tmp_path / "full", RUN)
    a, b = final_weights(tmp_path / "run"), final_weights(tmp_path / "full")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.timeout(120)
def test_disk_full_with_on_save_error_continue_logs_and_keeps_training(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INJECT_ENOSPC_AT_STEP", "8")
    summary = train_run(tmp_path, RUN + ["training.on_save_error=continue"])
    assert summary["final_step"] == 12
    log = (tmp_path / "train.log").read_text()
    assert "ERROR could not write checkpoint step_00000008" in log and "Training continues" in log
    names = [p.name for p in CheckpointStore(tmp_path / "checkpoints").step_dirs()]
    assert names == ["step_00000004", "step_00000012"]
    assert CheckpointStore(tmp_path / "checkpoints").pointer("latest").name == "step_00000012"


@pytest.mark.timeout(120)
def test_unwritable_checkpoint_path_is_a_clear_error_not_a_traceback_from_the_writer(tmp_path):
    """The temp folder's name is taken by a file nobody can replace with a folder (as root, permissions do
    not stop writes, so this is how the test makes the path unwritable): mkdir fails with a real OSError."""
    blocked = tmp_path / "checkpoints" / ".tmp-step_00000004"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    blocked.chmod(0o444)
    with pytest.raises(SaveFailed, match=r"could not write checkpoint step_00000004: (FileExistsError|NotADirectoryError)"
                       r".*no earlier one to measure.*no earlier checkpoint exists"):
        train_run(tmp_path, RUN, resume="auto")
    assert CheckpointStore(tmp_path / "checkpoints").pointer("latest") is None
