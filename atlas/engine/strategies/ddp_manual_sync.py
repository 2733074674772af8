"""DDP for dynamic batch sizing: every micro-batch runs without DDP's reducer, then one flat all-reduce.

With `memory_optimization.dynamic_batch_size` a rank may run out of memory in the middle of a backward.
Under DDP's bucketed reducer the other ranks would then wait in an all-reduce that never comes; here no
collective runs inside forward/backward, the ranks agree on the out-of-memory flag afterwards (the
loop's back-off), and the gradients are averaged in one flat all-reduce just before the update.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from atlas.engine import distributed as D
from atlas.engine.strategies.base import Strategy


class ManualSyncDDPStrategy(Strategy):
    name = "ddp"

    @property
    def label(self) -> str:
        return "ddp (one flat gradient all-reduce per step: dynamic_batch_size)"

    def sync(self, model: nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
        return D.no_sync(model, skip=True)

    def step(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
             max_norm: float | None) -> tuple[torch.Tensor, bool]:
        average_gradients(params, self.ctx)
        return super().step(params, optimizer, scaler, max_norm)


def average_gradients(params: list[torch.Tensor], ctx: D.DistContext) -> None:
    """One flat all-reduce of all gradients, divided by the world size."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    D.all_reduce_sum(flat, ctx)
    flat /= ctx.world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
