"""`eval.every_n_steps` runs closed-loop episodes in the real simulator during training and logs
success_rate (and per task) to metrics.jsonl; `checkpoints/best` can follow it."""

from __future__ import annotations

import pytest
from extras import require_extra
from train_helpers import read_metrics, train_run

from atlas.engine.checkpoint import CheckpointStore

require_extra("sim")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_success_rate_is_logged_and_selects_best(tmp_path):
    summary = train_run(tmp_path, [
        "data.state_dim=39", "data.action_dim=4", "model.action_horizon=4", "training.max_steps=4",
        # validation at every step, evaluation at 2 and 4: the lowest val_loss is at another step than
        # the best success rate (checked below), so a loop that ignores select_best_by picks another best
        "training.val_interval=1", "training.checkpoint_interval=100", "training.ema.enabled=true",
        "eval.every_n_steps=2", "eval.tasks=[reach-v3]", "eval.episodes=1", "eval.max_steps=12",
        "eval.exec_horizon=4", "eval.select_best_by=success_rate",
    ])
    lines = read_metrics(tmp_path)
    rows = [m for m in lines if "success_rate" in m]
    assert [m["step"] for m in rows] == [2, 4]
    assert all(0.0 <= m["success_rate"] <= 1.0 and "success_rate/reach-v3" in m for m in rows)
    # which step each criterion picks, from the logged numbers: the highest success rate (ties keep the
    # earlier step), the lowest val_loss. They must differ here, or the test could not tell them apart.
    success = {m["step"]: m["success_rate"] for m in rows}
    val = {m["step"]: m["val_loss"] for m in lines if "val_loss" in m}
    by_success = min(success, key=lambda step: (-success[step], step))
    by_val = min(val, key=val.get)
    assert by_success != by_val, f"success {success} and val_loss {val} pick the same step: the test cannot tell"
    best = CheckpointStore(tmp_path / "checkpoints").pointer("best")
    assert best is not None and best.name == f"step_{by_success:08d}", (best, success, val)
    assert summary["best_step"] == by_success and summary["best_success_rate"] == success[by_success]
