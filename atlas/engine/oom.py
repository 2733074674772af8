"""Out-of-memory back-off: halve the micro-batch (the largest divisor of
the per-rank batch at most half of it), raise accumulation to match, keep the effective batch.

Also the fault injector for tests and users: `ATLAS_INJECT_OOM_AT_STEP=S[:RANK]` raises a real
`torch.OutOfMemoryError` inside the policy's forward at optimizer step S (once), on RANK (default all).
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
    """Forward pre-hook that raises one real OutOfMemoryError at the configured step and rank."""

    def __init__(self, rank: int, clock: StepClock) -> None:
        spec = os.environ.get("ATLAS_INJECT_OOM_AT_STEP", "")
        self.clock = clock
        self.step: int | None = None
        self.fired = False
        if spec:
            step, _, only_rank = spec.partition(":")
            if not only_rank or int(only_rank) == rank:
                self.step = int(step)

    def attach(self, model: nn.Module) -> None:
        if self.step is not None:
            model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        if self.step is not None and not self.fired and self.clock.step == self.step:
            self.fired = True
            raise torch.OutOfMemoryError(f"injected out-of-memory at step {self.step} (ATLAS_INJECT_OOM_AT_STEP)")
