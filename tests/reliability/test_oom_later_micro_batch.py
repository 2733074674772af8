"""An out-of-memory error on a LATER micro-batch of a step (after earlier micro-batches' gradients have
accumulated), injected as a real torch.OutOfMemoryError in the policy's forward (ATLAS_INJECT_OOM_AT_STEP=
STEP::MICRO, atlas/engine/oom.py): the loop's back-off (atlas/loop/step.py) discards the half-accumulated
gradients, re-runs the SAME samples in halves, keeps the effective batch, and counts the step once.

The oracle is a clean run configured with the halved micro-batch from the start: every step, the one that
hit the OOM included, must have the same loss and gradient norm (to 1e-5 relative: the halved split only
re-associates float sums; a kept half-gradient doubles part of the step's gradient and moves grad_norm by
tens of percent), and the weights must end equal (Adam's eps 1e-6: see test_launchers_and_ddp.py).
"""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import assert_close, final_weights, read_metrics, train_run

RUN = ["training.max_steps=6", "training.log_interval=1", "training.val_interval=0", "training.checkpoint_interval=6",
       "training.learning_rate=3e-3", "training.adam_eps=1e-6", "memory_optimization.dynamic_batch_size=true"]
OOM_STEP, OOM_MICRO = 3, 2  # step 3's third micro-batch of four: two micro-batches' gradients are already summed


def per_step(run_dir) -> dict[int, tuple[float, float]]:
    return {m["step"]: (m["loss"], m["grad_norm"]) for m in read_metrics(run_dir) if "grad_norm" in m}


@pytest.mark.timeout(120)
def test_oom_on_a_later_micro_batch_discards_the_partial_gradients_and_keeps_the_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INJECT_OOM_AT_STEP", f"{OOM_STEP}::{OOM_MICRO}")
    summary = train_run(tmp_path / "oom", RUN + ["data.batch_size=4", "training.gradient_accumulation_steps=4"])
    monkeypatch.delenv("ATLAS_INJECT_OOM_AT_STEP")
    train_run(tmp_path / "halved", RUN + ["data.batch_size=2", "training.gradient_accumulation_steps=8"])

    log = (tmp_path / "oom" / "train.log").read_text()
    assert log.count("OOM at step") == 1 and f"OOM at step {OOM_STEP}: micro_batch 4→2, accumulation 4→8" in log
    # the step counter: each step once, none lost or repeated by the retry
    assert summary["final_step"] == 6
    oom, halved = per_step(tmp_path / "oom"), per_step(tmp_path / "halved")
    assert sorted(oom) == sorted(halved) == [1, 2, 3, 4, 5, 6]
    for step in oom:
        assert oom[step] == pytest.approx(halved[step], rel=1e-5), step
    state = json.loads((tmp_path / "oom" / "checkpoints" / "latest" / "trainer_state.json").read_text())
    assert (state["step"], state["micro_batch_size"], state["gradient_accumulation_steps"]) == (6, 2, 8)
    assert state["effective_batch_size"] == 16 and state["samples_seen"] == 6 * 16  # the same samples, none twice
    assert_close(final_weights(tmp_path / "oom"), final_weights(tmp_path / "halved"))


def test_the_injector_fires_only_in_the_named_micro_batch_of_the_named_step(monkeypatch):
    from atlas.engine.clock import StepClock
    from atlas.engine.oom import OOMInjector

    monkeypatch.setenv("ATLAS_INJECT_OOM_AT_STEP", "2::1")
    clock = StepClock(0)
    model = torch.nn.Linear(2, 2)
    OOMInjector(0, clock).attach(model)
    x = torch.zeros(1, 2)
    clock.advance(1)
    model(x), model(x)  # step 1: never
    clock.advance(2)
    model.eval()
    model(x)  # a validation forward is no micro-batch
    model.train()
    model(x)  # micro-batch 0
    with pytest.raises(torch.OutOfMemoryError, match="step 2, micro-batch 1"):
        model(x)
    model(x)  # once
