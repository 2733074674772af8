"""FSDP2: weights, gradients, optimizer state and the EMA sharded (atlas/engine/sharding.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from atlas.engine import sharding
from atlas.engine.strategies.base import OptimizerFactory, Strategy, load_whole


class FSDPStrategy(Strategy):
    """FSDP2 over the fusion blocks, the trainable vision backbone and the root (atlas/engine/sharding.py)."""

    name = "fsdp"
    collective_forward = True
    fused_optimizer = False

    @property
    def label(self) -> str:
        return "fsdp (FSDP2)"

    def setup(self, policy: nn.Module, make_optimizer: OptimizerFactory,
              weights: dict[str, torch.Tensor] | None = None) -> tuple[nn.Module, torch.optim.Optimizer]:
        load_whole(policy, weights)
        model = sharding.shard_policy(policy, self.mixed_precision)
        return model, make_optimizer()  # after sharding: the optimizer must hold the DTensor parameters

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        if self.mixed_precision != "fp16":
            return None
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler(self.ctx.device.type)  # agrees on inf/NaN across ranks: every shard skips together

    def sync(self, model: nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
        return sharding.gradient_sync(model, enabled)

    def evaluation_policy(self, policy: nn.Module, weights: dict[str, torch.Tensor] | None,
                          fresh) -> contextlib.AbstractContextManager[nn.Module | None]:
        return unsharded_copy(self, policy, weights, fresh)


@contextlib.contextmanager
def unsharded_copy(strategy: Strategy, policy: nn.Module, weights: dict[str, torch.Tensor] | None,
                    fresh) -> Iterator[nn.Module | None]:
    """Every rank takes part in gathering the full (EMA) weights; rank 0 evaluates an unsharded copy
    (a sharded forward on rank 0 alone would wait forever for the others' all-gather)."""
    full = strategy.gather(strategy.local_state(policy))
    if weights is not None:  # the EMA's tensors over the raw ones (it does not average frozen weights)
        full.update(strategy.gather(weights))
    if not strategy.ctx.is_main:
        yield None
        return
    with torch.random.fork_rng(devices=[]):  # initialising the copy must not move rank 0's training RNG
        copy = fresh()
    copy.to(strategy.ctx.device).load_state_dict(full)
    del full
    yield copy
