"""Out-of-memory back-off: halve the micro-batch (the largest divisor of
the per-rank batch at most half of it), raise accumulation to match, keep the effective batch.

Also the fault injector for tests and users: `ATLAS_INJECT_OOM_AT_STEP=S[:RANK[:MICRO]]` raises a real
`torch.OutOfMemoryError` inside the policy's forward at optimizer step S (once), on RANK (default, or empty:
all), in the training forward of micro-batch MICRO of that step (0-based, default 0: the first). MICRO > 0
is an OOM after earlier micro-batches' gradients have accumulated: the back-off must discard them.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from atlas.engine.clock import StepClock
from atlas.errors import AtlasError


class OOMGiveUp(AtlasError, RuntimeError):
    pass


def halve(micro: int, accumulation: int, step: int) -> tuple[int, int, str]:
    if micro <= 1:
        raise OOMGiveUp(
            f"out of memory at step {step} with micro-batch 1: nothing left to halve. "
            "Lower memory use (gradient_checkpointing, memory_efficient_attention, smaller model or images) "
            "or use more GPU memory."
        )
    per_rank = micro * accumulation
    new_micro = max(d for d in range(1, micro // 2 + 1) if per_rank % d == 0)
    new_acc = per_rank // new_micro
    return new_micro, new_acc, f"OOM at step {step}: micro_batch {micro}→{new_micro}, accumulation {accumulation}→{new_acc}"


class OOMInjector:
    """Forward pre-hook that raises one real OutOfMemoryError at the configured step, rank and micro-batch."""

    def __init__(self, rank: int, clock: StepClock) -> None:
        spec = os.environ.get("ATLAS_INJECT_OOM_AT_STEP", "")
        self.clock = clock
        self.step: int | None = None
        self.micro = 0  # which training forward of the step (0-based)
        self.fired = False
        self._forwards: tuple[int, int] = (0, 0)  # (step, training forwards seen in it)
        if spec:
            step, only_rank, micro = (spec.split(":") + ["", ""])[:3]
            try:
                if not only_rank or int(only_rank) == rank:
                    self.step, self.micro = int(step), int(micro or 0)
            except ValueError:
                raise ValueError(f"ATLAS_INJECT_OOM_AT_STEP={spec!r}: expected STEP[:RANK[:MICRO]]") from None

    def attach(self, model: nn.Module) -> None:
        if self.step is not None:
            model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        if self.step is None or self.fired or not module.training or self.clock.step != self.step:
            return
        step, seen = self._forwards
        seen = seen + 1 if step == self.clock.step else 1
        self._forwards = (self.clock.step, seen)
        if seen - 1 == self.micro:
            self.fired = True
            raise torch.OutOfMemoryError(f"injected out-of-memory at step {self.step}, micro-batch {self.micro} "
                                         "(ATLAS_INJECT_OOM_AT_STEP)")
