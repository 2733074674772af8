"""A full disk during the LARGE writes of a checkpoint (the weights, the EMA weights, the optimizer state),
not only the manifest (test_save_errors.py): ATLAS_INJECT_ENOSPC_AT_STEP=STEP:FILE lets the real writer
(safetensors, torch.save) write FILE, cuts it to half and raises OSError(ENOSPC) without a file name, as a
write() on a full device does (atlas/engine/faults.py).

What Atlas promises, checked against the files on disk (not its own helpers): `latest` still points at the
previous complete checkpoint, which verifies; the half-written folder is gone (no `.tmp-*`, no
`step_00000008`), so nothing resumes from it; the error names the checkpoint and the FILE being written;
and `--resume auto` continues from step 4, its first new metrics line step 5, to the same weights as a run
that never failed.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from train_helpers import final_weights, read_metrics, train_run

from atlas.engine.checkpoint import SaveFailed

RUN = ["training.max_steps=12", "training.checkpoint_interval=4", "training.val_interval=0", "training.log_interval=1",
       "training.ema.enabled=true"]
FILES = ["model.safetensors", "ema/model.safetensors", "optimizer.pt"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("full") / "run"
    train_run(run, RUN)
    return final_weights(run)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", FILES)
def test_disk_full_while_writing_a_large_file_keeps_latest_and_resumes(tmp_path, monkeypatch, uninterrupted, name):
    run, checkpoints = tmp_path / "run", tmp_path / "run" / "checkpoints"
    monkeypatch.setenv("ATLAS_INJECT_ENOSPC_AT_STEP", f"8:{name}")
    with pytest.raises(SaveFailed) as caught:
        train_run(run, RUN)
    message = str(caught.value)
    assert message.startswith(f"could not write checkpoint step_00000008 (writing {name}): OSError: [Errno 28] No space left")
    assert "latest is still step_00000004" in message and "--resume auto" in message

    assert os.readlink(checkpoints / "latest") == "step_00000004"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step_00000004"]  # no partial folder left
    previous = checkpoints / "step_00000004"
    manifest = json.loads((previous / "manifest.json").read_text())["files"]
    for rel, entry in manifest.items():  # every file the manifest lists is there, at its recorded size
        size = entry["size"] if isinstance(entry, dict) else entry
        assert (previous / rel).stat().st_size == size, rel
    assert {"model.safetensors", "ema/model.safetensors", "optimizer.pt"} <= set(manifest)
    assert json.loads((previous / "trainer_state.json").read_text())["step"] == 4

    monkeypatch.delenv("ATLAS_INJECT_ENOSPC_AT_STEP")
    before = len(read_metrics(run))
    assert train_run(run, RUN, resume="auto")["final_step"] == 12
    assert "resumed from" in (log := (run / "train.log").read_text()) and "step_00000004 at step 4" in log
    new_steps = [m["step"] for m in read_metrics(run)[before:] if "loss" in m]
    assert new_steps[0] == 5 and new_steps[-1] == 12
    weights = final_weights(run)
    assert all(torch.equal(weights[k], uninterrupted[k]) for k in uninterrupted)
