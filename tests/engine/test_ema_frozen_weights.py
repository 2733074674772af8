"""Frozen weights are not in the EMA file: it holds the averaged tensors and buffers and reads back whole
through every reader (eval, model.pretrained, resume), with its rest taken from the raw weights (which take
theirs from the run's frozen file: tests/engine/test_frozen_weights_once.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_helpers import final_weights, straight_and_resumed, train_run  # noqa: E402

FROZEN = ["training.lr_multipliers={task_embedding: 0.0, fusion.0: 0.0}", "training.max_steps=6",
          "training.checkpoint_interval=3", "training.ema.enabled=true", "training.ema.decay=0.5",
          "training.seed=3"]


def _frozen_names(run: Path) -> set[str]:
    raw = final_weights(run)
    return {k for k in raw if k.startswith(("task_embedding.", "fusion.0."))}


def test_ema_file_holds_no_frozen_tensor_and_reads_back_whole(tmp_path):
    from atlas.engine.checkpoint import load_weights
    from atlas.sim.checkpoint import load_checkpoint

    run = tmp_path / "run"
    train_run(run, FROZEN)
    latest = run / "checkpoints" / "latest"
    raw = final_weights(run)  # the raw weights, whole (frozen file included)
    ema_only = load_file(str(latest / "ema" / "model.safetensors"))
    frozen = _frozen_names(run)
    assert frozen and not frozen & ema_only.keys()  # not averaged, not written again
    with safe_open(str(latest / "ema" / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"atlas.rest": "raw"}
    # the trainable tensors were averaged (decay 0.5 over 6 steps: not the raw weights)
    assert any(not torch.equal(ema_only[k], raw[k]) for k in ema_only if k.startswith("action_head."))
    whole = load_weights(latest / "ema" / "model.safetensors")
    assert whole.keys() == raw.keys()
    for name in frozen:
        assert torch.equal(whole[name], raw[name])
    for name in ema_only:
        assert torch.equal(whole[name], ema_only[name])
    loaded = load_checkpoint(run, "ema")  # what `atlas eval` loads
    assert loaded.weights_kind == "ema"
    state = loaded.policy.state_dict()
    for name in whole:
        assert torch.equal(state[name], whole[name]), name


def test_resume_restores_the_partial_ema_bitwise(tmp_path, monkeypatch):
    straight, resumed = straight_and_resumed(tmp_path, FROZEN, 3, monkeypatch)
    a = load_file(str(straight / "checkpoints" / "latest" / "ema" / "model.safetensors"))
    b = load_file(str(resumed / "checkpoints" / "latest" / "ema" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_an_ema_file_without_its_raw_file_is_one_clear_error(tmp_path):
    from atlas.engine.checkpoint import CheckpointError, load_weights

    run = tmp_path / "run"
    train_run(run, FROZEN)
    latest = run / "checkpoints" / "latest"
    (latest / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"ema/model.safetensors: holds only the averaged tensors.*model.safetensors"):
        load_weights(latest / "ema" / "model.safetensors")
