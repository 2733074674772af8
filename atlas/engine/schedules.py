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


SCHEDULE_KEYS = ("lr_scheduler", "learning_rate", "warmup_steps", "max_steps", "min_lr")


def schedule_record(peak: float, schedule: str, warmup_steps: int, max_steps: int, min_lr: float) -> dict:
    """What scheduler.json holds: every input of `learning_rate_at` (the LR is a pure function of the step)."""
    return {"lr_scheduler": schedule, "learning_rate": peak, "warmup_steps": warmup_steps, "max_steps": max_steps,
            "min_lr": min_lr, "note": "the LR is a pure function of the step (atlas/engine/schedules.py)"}


def _lr_from(record: dict, step: int) -> float:
    return learning_rate_at(step, record["learning_rate"], record["lr_scheduler"], record["warmup_steps"],
                            record["max_steps"], record.get("min_lr", 0.0))


def schedule_change(old: dict, new: dict, next_step: int) -> str | None:
    """The warning a resume owes the user when the schedule's settings changed (every remaining step's LR
    moves with them), with the LR the next step gets under the old and the new settings; None if unchanged.
    Settings a checkpoint did not record (written by an older Atlas) are not compared."""
    changed = [k for k in SCHEDULE_KEYS if k in old and old[k] != new[k]]
    if not changed:
        return None
    what = ", ".join(f"{k} {old[k]} -> {new[k]}" for k in changed)
    try:
        before = f"{_lr_from({**new, **old}, next_step):.3g}"
    except (KeyError, ValueError, TypeError):
        before = "unknown"
    return (f"resuming with a changed LR schedule ({what}): step {next_step} gets LR {_lr_from(new, next_step):.3g} "
            f"(it would have been {before} under the checkpoint's settings), and every later step moves too")
