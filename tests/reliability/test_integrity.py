"""Checkpoint integrity through `--resume auto` on real files: a truncated or bit-flipped `latest` is
reported and the previous complete checkpoint used; a hostile pickle is refused, never executed."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from train_helpers import final_weights, train_run

from atlas.config import ConfigError
from atlas.engine.checkpoint import CheckpointError, CheckpointStore, load_torch, write_manifest

RUN = ["training.max_steps=8", "training.checkpoint_interval=4", "training.val_interval=0", "training.lr_scheduler=constant"]
LONGER = ["training.max_steps=12", "training.checkpoint_interval=4", "training.val_interval=0", "training.lr_scheduler=constant"]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("reference")
    train_run(run, LONGER)
    return final_weights(run)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("damage", "file", "problem"), [
    (_truncate, "model.safetensors", "bytes, manifest says"),
    (_flip_bit, "model.safetensors", "fails its checksum"),
    (_flip_bit, "optimizer.pt", "fails its checksum"),
    (os.remove, "manifest.json", "has no manifest.json"),
])
def test_damaged_latest_is_reported_and_the_previous_checkpoint_used(tmp_path, reference, damage, file, problem):
    train_run(tmp_path, RUN)
    damage(tmp_path / "checkpoints/step_00000008" / file)
    summary = train_run(tmp_path, LONGER, resume="auto")
    log = (tmp_path / "train.log").read_text()
    assert "WARNING checkpoint step_00000008 is not usable (" in log and problem in log
    assert "resumed from" in log and "step_00000004 at step 4" in log
    assert summary["final_step"] == 12
    weights = final_weights(tmp_path)
    assert all(torch.equal(weights[k], reference[k]) for k in reference)


@pytest.mark.timeout(120)
def test_resume_from_a_damaged_path_names_the_file(tmp_path):
    train_run(tmp_path, RUN)
    _truncate(tmp_path / "checkpoints/step_00000008/model.safetensors")
    with pytest.raises(ConfigError, match=r"step_00000008/model.safetensors has \d+ bytes, manifest says \d+"):
        train_run(tmp_path, LONGER, resume=str(tmp_path / "checkpoints/step_00000008"))


@pytest.mark.timeout(120)
def test_damage_that_also_rewrote_the_manifest_is_a_checkpoint_error_not_a_safetensors_crash(tmp_path):
    train_run(tmp_path, RUN)
    latest = tmp_path / "checkpoints/step_00000008"
    _truncate(latest / "model.safetensors")
    write_manifest(latest)  # the manifest agrees with the damage: only the reader can tell
    with pytest.raises(CheckpointError, match=r"step_00000008/model.safetensors: not a readable safetensors file"):
        train_run(tmp_path, LONGER, resume="auto")


class _WritesAFile:
    """Unpickling this calls open(marker, 'w').write(...): code execution, if anything unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the raw-pickle file, refused anyway
@pytest.mark.parametrize("file", ["optimizer.pt", "rng/rank_0.pt", "model.safetensors"])
def test_a_malicious_pickle_in_a_checkpoint_is_never_executed(tmp_path, file):
    train_run(tmp_path, RUN)
    latest = tmp_path / "checkpoints/step_00000008"
    marker = tmp_path / "pwned.txt"
    if file.endswith(".pt"):
        torch.save({"state": _WritesAFile(marker)}, latest / file)  # a real torch checkpoint carrying the payload
    else:
        (latest / file).write_bytes(pickle.dumps(_WritesAFile(marker)))
    (latest / "pytorch_model.bin").write_bytes(pickle.dumps(_WritesAFile(marker)))  # never opened at all
    write_manifest(latest)  # an attacker can rewrite the manifest too: checksums are not signatures
    with pytest.raises(CheckpointError, match=f"{file}: (refused or unreadable|not a readable safetensors)"):
        train_run(tmp_path, LONGER, resume="auto")
    assert not marker.exists(), "the pickle ran"
    with pytest.raises(CheckpointError):
        load_torch(latest / "pytorch_model.bin")
    assert not marker.exists()
    assert CheckpointStore(tmp_path / "checkpoints").pointer("latest") == latest
