"""LR schedules, read back from the metrics.jsonl of real runs (seed 001's warmup numbers)."""

from __future__ import annotations

import math

import pytest
from train_helpers import read_metrics, train_run

from atlas.engine.schedules import learning_rate_at

PEAK, WARMUP, END = 1e-4, 1000, 1200


def expected(schedule: str, step: int) -> float:
    if step <= WARMUP:
        return PEAK * step / WARMUP
    if schedule == "constant":
        return PEAK
    progress = (step - WARMUP) / (END - WARMUP)
    if schedule == "cosine":
        return PEAK * 0.5 * (1 + math.cos(math.pi * progress))
    return PEAK * (1 - progress)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_schedule_values_in_metrics(tmp_path, schedule):
    train_run(tmp_path / schedule, [
        f"training.lr_scheduler={schedule}", f"training.learning_rate={PEAK}", f"training.warmup_steps={WARMUP}",
        f"training.max_steps={END}", "training.log_interval=1", "training.val_interval=0",
        "training.checkpoint_interval=100000", "data.batch_size=2",
    ])
    lr = {m["step"]: m["lr"] for m in read_metrics(tmp_path / schedule) if "lr" in m}
    assert lr[250] == pytest.approx(2.5e-5) and lr[500] == pytest.approx(5e-5)  # seed 001
    assert lr[1] == pytest.approx(1e-7)  # the first update uses peak/warmup, not zero
    for step in (1, 250, 500, 1000, 1100, END):
        assert lr[step] == pytest.approx(expected(schedule, step), abs=1e-12), step
    assert lr[1000] == pytest.approx(PEAK)
    if schedule != "constant":
        assert lr[END] == pytest.approx(0.0, abs=1e-15)


def test_min_lr_is_reached_at_the_end():
    for schedule in ("cosine", "linear"):
        assert learning_rate_at(100, 1e-3, schedule, 10, 100, min_lr=1e-5) == pytest.approx(1e-5)
        assert learning_rate_at(10, 1e-3, schedule, 10, 100, min_lr=1e-5) == pytest.approx(1e-3)
    assert learning_rate_at(5, 1e-3, "constant", 0, 100) == 1e-3
