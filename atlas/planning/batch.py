"""Effective-batch arithmetic: micro-batch × world size × accumulation, and the scaled learning rate.

This is the one place that turns batch intent into numbers; `atlas plan`, `atlas doctor` and the loop
all call it, so they never disagree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from atlas.config.errors import ConfigError
from atlas.config.schema import TrainingConfig


@dataclass
class BatchPlan:
    micro_batch_size: int
    gradient_accumulation_steps: int
    world_size: int
    effective_batch_size: int
    base_learning_rate: float
    learning_rate: float
    lr_scaling: str
    base_batch_size: int

    def to_dict(self) -> dict:
        return asdict(self)

    def arithmetic(self) -> str:
        return (
            f"effective batch {self.effective_batch_size} = micro-batch {self.micro_batch_size} "
            f"x {self.world_size} process(es) x accumulation {self.gradient_accumulation_steps}"
        )


def reachable_batches(target: int, per_step: int) -> str:
    """What the user could ask for instead when `target` is not a multiple of `per_step`."""
    below = max(per_step, (target // per_step) * per_step)
    above = below + per_step if below < target else below
    return f"{below} (accumulation {below // per_step}) or {above} (accumulation {above // per_step})"


def scaled_learning_rate(base_lr: float, rule: str, effective_batch: int, base_batch: int) -> float:
    ratio = effective_batch / base_batch
    if rule == "linear":
        return base_lr * ratio
    if rule == "sqrt":
        return base_lr * math.sqrt(ratio)
    return base_lr


def plan_batch(
    training: TrainingConfig,
    batch_size: int,
    world_size: int,
    effective_batch_size: int | None = None,
) -> BatchPlan:
    """Resolve accumulation from the effective batch (or the reverse).

    `effective_batch_size` given here (e.g. from a checkpoint being resumed on another world size)
    wins over the config, so resuming keeps the effective batch.
    """
    per_step = batch_size * world_size
    target = effective_batch_size or training.effective_batch_size
    if target is not None:
        if target % per_step:
            divisors = [b for b in range(1, target + 1) if target % (b * world_size) == 0][:8]
            raise ConfigError(
                f"training.effective_batch_size={target} cannot be reached with data.batch_size={batch_size} x "
                f"world_size={world_size} (= {per_step} per accumulation step); reachable: "
                f"{reachable_batches(target, per_step)}; or data.batch_size in {divisors}"
            )
        accumulation = target // per_step
        explicit = training.gradient_accumulation_steps
        if effective_batch_size is None and explicit is not None and explicit != accumulation:
            raise ConfigError(
                f"training.gradient_accumulation_steps={explicit} disagrees with training.effective_batch_size={target} "
                f"(= {batch_size} x {world_size} x {accumulation}); set only one of them"
            )
    else:
        accumulation = training.gradient_accumulation_steps or 1
        target = per_step * accumulation
    base_batch = training.base_batch_size or batch_size
    lr = scaled_learning_rate(training.learning_rate, training.lr_scaling, target, base_batch)
    return BatchPlan(
        micro_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        world_size=world_size,
        effective_batch_size=target,
        base_learning_rate=training.learning_rate,
        learning_rate=lr,
        lr_scaling=training.lr_scaling,
        base_batch_size=base_batch,
    )
