"""The strategy interface, and its default: replicated weights (one process, or DDP).

The loop asks the strategy, and only the strategy, for what differs between layouts (see
atlas/engine/strategies/__init__.py for the list). Checkpoints do not depend on the strategy: full
weights in safetensors, the optimizer as a full state dict keyed by parameter name.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from atlas.engine import distributed as D
from atlas.engine import sharding
from atlas.engine.optim import named_optimizer_state

OptimizerFactory = Callable[[], torch.optim.Optimizer]


class Strategy:
    """DDP, and the single process: the default every other strategy departs from."""

    name = "ddp"
    # True when a forward pass is itself a collective (all-gathers weights): then every rank must run the
    # same number of them, and rank 0 may never run one alone.
    collective_forward = False
    # AdamW's fused kernel (atlas/engine/optim.py `adamw_kernel`); sharded strategies use foreach
    fused_optimizer = True

    def __init__(self, ctx: D.DistContext, mixed_precision: str = "no") -> None:
        self.ctx = ctx
        self.mixed_precision = mixed_precision

    @property
    def label(self) -> str:
        return "ddp" if self.ctx.distributed else "single process"

    # -- building ---------------------------------------------------------------------------------
    def setup(self, policy: nn.Module, make_optimizer: OptimizerFactory,
              weights: dict[str, torch.Tensor] | None = None) -> tuple[nn.Module, torch.optim.Optimizer]:
        """(the module the loop calls forward on, the optimizer whose group LRs the loop sets).

        `weights` (a resumed or pretrained checkpoint's full tensors) go into the whole policy first:
        every strategy loads before it wraps, shards or partitions."""
        load_whole(policy, weights)
        return D.wrap_model(policy, self.ctx), make_optimizer()

    def describe(self, policy: nn.Module, ema_state: dict[str, torch.Tensor] | None) -> list[str]:
        """This rank's layout, one line per kind of state: what it holds of the full tensors."""
        held, total = self.held(self.local_state(policy))
        lines = [f"weights on rank {self.ctx.rank}: {held} of {total} elements ({self.name})"]
        if ema_state is not None:
            held, total = self.held(ema_state)
            lines.append(f"EMA on rank {self.ctx.rank}: {held} of {total} elements ({self.name})")
        return lines

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.ctx.device.type) if self.mixed_precision == "fp16" else None

    # -- a step -----------------------------------------------------------------------------------
    def sync(self, model: nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
        """Gradient synchronisation on (the last micro-batch of a step) or off (all others)."""
        return D.no_sync(model, skip=not enabled)

    def backward(self, model: nn.Module, loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
             max_norm: float | None) -> tuple[torch.Tensor, bool]:
        """Clip, then update unless the gradients are not finite: (grad norm before clipping, updated).
        A step that is not taken leaves the gradients for the caller to drop (and the scaler to update)."""
        if scaler is not None:
            scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else float("inf"))
        norm = sharding.full_tensor(norm)  # a replicated DTensor under FSDP: a plain tensor for logging
        # the one host sync of a step: one scalar read (torch.isfinite would be four more ops on the host)
        if not math.isfinite(norm.item()):
            return norm, False
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm, True

    # -- full state (checkpoints, evaluation) ------------------------------------------------------
    def local_tensor(self, param: nn.Parameter) -> torch.Tensor:
        """The part of `param` this rank holds and updates (the EMA follows it): the parameter itself,
        a DTensor shard under FSDP."""
        return param

    def local_state(self, policy: nn.Module) -> dict[str, torch.Tensor]:
        """The policy's state dict in this rank's layout: what `gather` takes."""
        return policy.state_dict()

    def held(self, tensors: dict[str, torch.Tensor]) -> tuple[int, int]:
        """(elements this rank holds, elements of the full tensors) of a dict in this rank's layout."""
        return sharding.numel(tensors)

    def gather(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Full tensors on rank 0 ({} on other ranks). Every rank calls it."""
        return sharding.full_tensors(tensors, keep=self.ctx.is_main)

    def scatter(self, full: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Full tensors (every rank read the same file) laid out like `like`."""
        return sharding.shard_like(full, like)

    def optimizer_state(self, policy: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """Full optimizer state keyed by parameter name, on rank 0 ({} elsewhere). Every rank calls it."""
        if not optimizer.state:  # no step taken yet: the helper would take a zero-LR step to create state
            return optimizer.state_dict() if self.ctx.is_main else {}
        if not sharding.any_dtensor(p for group in optimizer.param_groups for p in group["params"]):
            # whole tensors on every rank: the same dict torch's helper builds, without its model walk (~5 ms
            # a save on the mlp, figures in RESULTS.md); tests/engine/test_optimizer_state.py compares the two
            return named_optimizer_state(policy, optimizer) if self.ctx.is_main else {}
        # imported only here: torch.distributed.checkpoint is slow to import, and a single-process run would pay
        # for it inside its first save (figures in RESULTS.md, loop_work.py's section)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(policy, optimizer, options=options)

    def load_optimizer_state(self, policy: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if not keyed_by_name(state):  # written before any step, or by an older Atlas
            optimizer.load_state_dict(state)
            return
        # strict=False: a parameter that never had a gradient (unused by this head) has no state, as in torch's own
        options = StateDictOptions(full_state_dict=True, strict=False)
        set_optimizer_state_dict(policy, optimizer, state, options=options)

    @contextlib.contextmanager
    def evaluation_policy(self, policy: nn.Module, weights: dict[str, torch.Tensor] | None,
                          fresh: Callable[[], nn.Module]) -> Iterator[nn.Module | None]:
        """On rank 0 the policy with `weights` (EMA) swapped in for the duration, else None. Weights are
        whole on every rank, so rank 0 evaluates the training module itself and swaps back after."""
        if not self.ctx.is_main:
            yield None
            return
        raw = {k: v.detach().clone() for k, v in policy.state_dict().items()} if weights is not None else None
        if weights is not None:
            policy.load_state_dict(weights, strict=False)
        try:
            yield policy
        finally:
            if raw is not None:
                policy.load_state_dict(raw)
            policy.train()


def parameter_names(policy: nn.Module) -> dict[nn.Parameter, str]:
    return {p: n for n, p in policy.named_parameters()}


def keyed_by_name(state: dict) -> bool:
    return any(isinstance(p, str) for group in state.get("param_groups", []) for p in group["params"])


def load_whole(policy: nn.Module, weights: dict[str, torch.Tensor] | None) -> None:
    """Full tensors into the unwrapped, unsharded policy (before a strategy sets it up)."""
    if weights is not None:
        policy.load_state_dict(weights)
