"""Config of evaluation in simulation: the `eval:` block."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from atlas.config.base import Section


class EvalConfig(Section):
    every_n_steps: int = Field(0, ge=0, description="Run a short closed-loop evaluation every N optimizer steps (0: never).")
    env: str = Field("metaworld", description="Environment registry key.")
    tasks: list[str] = Field(default_factory=list, description="Tasks to evaluate (empty: the tasks in the training data).")
    episodes: int = Field(10, gt=0, description="Episodes per task.")
    exec_horizon: int = Field(8, gt=0, description="Actions of each predicted chunk executed before predicting again.")
    max_steps: int | None = Field(
        None, gt=0,
        description="Environment steps per episode before giving up (empty: the env's own limit: Meta-World 500, "
        "LIBERO per suite: spatial 220, object 280, goal 300, libero_10 520, libero_90 400).",
    )
    select_best_by: Literal["val_loss", "success_rate"] = Field(
        "val_loss", description="What `checkpoints/best` follows."
    )
