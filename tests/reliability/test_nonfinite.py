"""Non-finite losses: the update is skipped and logged with the step and the loss terms; too many in a
row stop the run with a clear error and the last good checkpoint kept. NaN comes from the real forward
(ATLAS_INJECT_NAN_AT_STEP scales the policy's returned losses by NaN inside a forward hook)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import read_metrics, train_run

from atlas.engine.checkpoint import CheckpointStore, verify
from atlas.train import NonFiniteError

EVERY_STEP = ["training.checkpoint_interval=1", "training.val_interval=0", "training.log_interval=1"]


def _weights(run_dir, step: int) -> dict:
    return load_file(str(run_dir / f"checkpoints/step_{step:08d}/model.safetensors"))


@pytest.mark.timeout(120)
def test_a_nan_step_is_skipped_and_named_with_its_loss_terms(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INJECT_NAN_AT_STEP", "3")
    summary = train_run(tmp_path, ["model.preset=atlas-tiny", "training.max_steps=5", *EVERY_STEP])
    assert summary["final_step"] == 5
    log = (tmp_path / "train.log").read_text()
    # the policy returns loss, loss_sum and its head's per-part term; each NaN one is named
    assert "non-finite loss/gradients at step 3 (loss terms: loss_sum, loss, flow_loss); update skipped" in log
    before, skipped, after = _weights(tmp_path, 2), _weights(tmp_path, 3), _weights(tmp_path, 4)
    assert all(torch.equal(before[k], skipped[k]) for k in before), "step 3 changed the weights"
    assert not all(torch.equal(skipped[k], after[k]) for k in before), "training did not go on after the skip"
    assert all(torch.isfinite(v).all() for v in after.values())
    losses = {m["step"]: m["loss"] for m in read_metrics(tmp_path) if "loss" in m}
    assert math.isfinite(losses[2]) and math.isfinite(losses[4])


@pytest.mark.timeout(120)
def test_too_many_nan_steps_in_a_row_stop_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INJECT_NAN_AT_STEP", "4:10")
    with pytest.raises(NonFiniteError) as caught:
        train_run(tmp_path, ["training.max_steps=20", "training.max_nonfinite_steps=3", *EVERY_STEP])
    message = str(caught.value)
    assert "3 non-finite steps in a row (last: step 6, loss terms: loss_sum, loss)" in message
    latest = CheckpointStore(tmp_path / "checkpoints").pointer("latest")
    # steps 4 and 5 changed nothing, so their checkpoints hold the step-3 weights; step 6 was not saved
    assert str(latest) in message and latest.name == "step_00000005" and verify(latest) is None
    assert not (tmp_path / "checkpoints/step_00000006").exists()
    three, five = _weights(tmp_path, 3), _weights(tmp_path, 5)
    assert all(torch.equal(three[k], five[k]) for k in three)
    log = (tmp_path / "train.log").read_text()
    assert [f"at step {s} (" in log for s in (4, 5, 6)] == [True, True, True] and "ERROR" in log


@pytest.mark.timeout(120)
def test_inf_gradients_with_finite_losses_are_named_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INJECT_NAN_AT_STEP", "2:1:grad")
    train_run(tmp_path, ["training.max_steps=3", *EVERY_STEP])
    assert "non-finite loss/gradients at step 2 (gradients; every loss term finite)" in (tmp_path / "train.log").read_text()
    assert all(torch.equal(a, b) for a, b in zip(_weights(tmp_path, 1).values(), _weights(tmp_path, 2).values()))


@pytest.mark.timeout(120)
def test_fp16_grad_scaler_overflows_are_counted_apart_from_nonfinite_steps(tmp_path, monkeypatch):
    """fp16 autocast runs on CPU with torch 2.13 (matmuls and layer norms in half precision), so this is
    the real GradScaler: an overflowing backward halves the scale and skips the update, and does not
    count toward training.max_nonfinite_steps (1 here: a real non-finite step would stop the run)."""
    monkeypatch.setenv("ATLAS_INJECT_NAN_AT_STEP", "3:2:grad")
    summary = train_run(tmp_path, ["training.mixed_precision=fp16", "training.max_steps=6", "training.max_nonfinite_steps=1",
                                   *EVERY_STEP])
    assert summary["final_step"] == 6
    log = (tmp_path / "train.log").read_text()
    assert "fp16 grad scaler: gradients overflowed at step 3, update skipped, scale 65536->32768 (1 scaler skips" in log
    assert "fp16 grad scaler: gradients overflowed at step 4, update skipped, scale 32768->16384 (2 scaler skips" in log
    assert "non-finite loss/gradients" not in log
    assert all(torch.equal(a, b) for a, b in zip(_weights(tmp_path, 2).values(), _weights(tmp_path, 4).values()))
    assert not all(torch.equal(a, b) for a, b in zip(_weights(tmp_path, 4).values(), _weights(tmp_path, 5).values()))
    scaler = torch.load(tmp_path / "checkpoints/step_00000006/scaler.pt", weights_only=True)
    assert scaler["scale"] == 16384.0
