"""On a GPU the loop predicts the user's own micro-batch with the user's own memory options and warns when it
will not fit, even where the planner's choice fits by turning gradient checkpointing on (an H200 run said
"up to 64 fits" with checkpointing, then ran out of memory at 64 without it). The GPU is only its size here."""

from __future__ import annotations

import logging

import pytest

from atlas.config import load_config
from atlas.planning.run_plan import Hardware, resolve_run_plan

BASE = ["data.format=synthetic", "model.preset=atlas-base", "model.language.name=task_embedding", "data.image_size=224",
        "data.num_cameras=2", "data.state_dim=14", "data.action_dim=14", "training.mixed_precision=bf16",
        "data.batch_size=64"]


def _judge(overrides: list[str], gib: float, caplog) -> dict:
    """The run plan `atlas train` resolves on a GPU of `gib` GiB; its warnings logged as the loop logs them."""
    cfg = load_config(None, BASE + overrides)
    run = resolve_run_plan(cfg, Hardware(world_size=1, gpu_memory_gb=gib))
    with caplog.at_level(logging.WARNING, logger="atlas-test"):
        for line in run.warnings:
            logging.getLogger("atlas-test").warning(line)
    return {"plan": run.planner["suggested"], "record": run.memory_plan, "text": caplog.text}


@pytest.mark.timeout(120)
def test_a_micro_batch_that_needs_checkpointing_it_does_not_have_is_warned(caplog):
    out = _judge(["memory_optimization.max_memory_usage=0.5"], 16.0, caplog)  # 8 GB allowed
    assert out["plan"].micro_batch_size == 64 and out["plan"].gradient_checkpointing  # the planner's own way
    configured = out["record"]["configured"]
    assert configured["micro_batch_size"] == 64 and not configured["fits"] and configured["memory"]["total"] > 8
    assert "data.batch_size=64 needs" in out["text"] and "gradient_checkpointing=False" in out["text"]
    assert "expect out-of-memory" in out["text"] and "dynamic_batch_size=true to back off" in out["text"]


@pytest.mark.timeout(120)
def test_a_micro_batch_that_fits_is_recorded_without_a_warning(caplog):
    out = _judge([], 80.0, caplog)
    assert out["record"]["configured"]["fits"] and out["text"] == ""
