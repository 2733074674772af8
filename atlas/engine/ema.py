"""Exponential moving average of the weights, kept in fp32 whatever the training precision.

Built after the strategy has set the model up, and sharded alongside it: each rank averages the part of
each parameter it holds (`Strategy.local_tensor`). Under FSDP that is the parameter's DTensor shard,
under ZeRO-3 its flat partition `param.ds_tensor`. So the EMA costs 4 bytes per parameter divided by
the world size and no communication per step; checkpoints and evaluation gather it (the strategy's
`gather`), resumes cut the full saved EMA back to partitions (`scatter`).

Only the trainable parameters (and the buffers) are kept: the average of a frozen weight is the weight,
so a frozen MiniLM or VGGT costs the EMA no memory and its checkpoint file no bytes (the file says where
the rest is: atlas/engine/weight_files.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from atlas.config.schema import EMAConfig


def _whole(param: nn.Parameter) -> torch.Tensor:
    return param


class EMA:
    """decay = fixed `decay`, or the warmup form min(max_decay, 1 - (1 + k)^-power) with k = step - 1,
    so the first update copies the weights and the average lengthens as training goes (RDT: 0.75, 0.9999)."""

    def __init__(self, model: nn.Module, cfg: EMAConfig,
                 local: Callable[[nn.Parameter], torch.Tensor] = _whole) -> None:
        self.cfg = cfg
        self._local = local  # looked up at every update: ZeRO may re-point a partition at a new buffer
        named = dict(model.named_parameters())
        self.shadow = {}
        for key, value in model.state_dict().items():
            if key in named and not named[key].requires_grad:
                continue  # frozen: the raw weight is its own average
            value = (local(named[key]) if key in named else value).detach()
            self.shadow[key] = value.clone().float() if value.is_floating_point() else value.clone()
        # resolved once: the update runs every optimizer step
        trainable = [n for n in self.shadow if n in named]
        self._params = [named[n] for n in trainable]
        # the parameters themselves in fp32 (one process, DDP): detached views, updated in place by the
        # optimizer, resolved once; otherwise (FSDP shards, ZeRO partitions, low precision) every update
        self._current = ([p.detach() for p in self._params]
                         if all(local(p) is p and p.dtype == torch.float32 for p in self._params) else None)
        self._shadows = [self.shadow[n] for n in trainable]
        self._buffers = [(self.shadow[n], b) for n, b in model.named_buffers() if n in self.shadow]

    def decay(self, step: int) -> float:
        if self.cfg.decay is not None:
            return self.cfg.decay
        return min(self.cfg.max_decay, 1.0 - (1.0 + (step - 1)) ** -self.cfg.power)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """`model` must be the module the EMA was built from (its tensors were resolved at construction)."""
        if self._shadows:
            current = self._current or [self._local(p).detach().float() for p in self._params]
            torch._foreach_lerp_(self._shadows, current, 1.0 - self.decay(step))

    @torch.no_grad()
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged parameters and the model's buffers as they are now. Buffers are not averaged, only
        followed, so they are copied when the EMA is read (a save, an evaluation), not at every step: the
        same values, without a copy per buffer per step (12 normalizer buffers on the mlp)."""
        for shadow, buffer in self._buffers:
            shadow.copy_(buffer)
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            if key in self.shadow:
                self.shadow[key].copy_(value)
