"""Learning-rate schedules as pure functions of the optimizer step.

Steps count from 1 (the first update is step 1). With `warmup_steps = W > 0`, step s <= W uses
lr * s / W, so the first update uses lr / W (never a wasted zero-LR step) and step W reaches the peak;
seed 001's numbers hold (1e-4, W=1000: 2.5e-5 at 250, 5e-5 at 500, 1e-4 at 1000). After warmup,
`constant` stays at the peak, `cosine` and `linear` decay to `min_lr` exactly at `max_steps`.
Deriving the LR from the step (rather than a stateful scheduler) makes resume exact by construction.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "linear")


def learning_rate_at(
    step: int, peak: float, schedule: str, warmup_steps: int, max_steps: int, min_lr: float = 0.0
) -> float:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr_scheduler {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if warmup_steps > 0 and step <= warmup_steps:
        return peak * step / warmup_steps
    if schedule == "constant":
        return peak
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    if schedule == "cosine":
        return min_lr + (peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr + (peak - min_lr) * (1.0 - progress)


def apply_learning_rate(optimizer, lr: float) -> None:
    """Set each group's LR to `lr` times its multiplier."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_multiplier", 1.0)
