"""Exponential moving average of the weights, kept in fp32 whatever the training precision.

Built after the strategy has set the model up: under FSDP its parameters are DTensor shards, so the
shadow is sharded alike and `_foreach_lerp_` updates each rank's shard (checkpoints gather it)."""

from __future__ import annotations

import torch
from torch import nn

from atlas.config.schema import EMAConfig


class EMA:
    """decay = fixed `decay`, or the warmup form min(max_decay, 1 - (1 + k)^-power) with k = step - 1,
    so the first update copies the weights and the average lengthens as training goes (RDT: 0.75, 0.9999)."""

    def __init__(self, model: nn.Module, cfg: EMAConfig) -> None:
        self.cfg = cfg
        self.shadow = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                       for k, v in model.state_dict().items()}
        # resolved once: the update runs every optimizer step
        named = dict(model.named_parameters())
        trainable = [n for n, p in named.items() if p.requires_grad]
        self._params = [named[n] for n in trainable]
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
            torch._foreach_lerp_(self._shadows, [p.detach().float() for p in self._params], 1.0 - self.decay(step))
        for shadow, buffer in self._buffers:
            shadow.copy_(buffer)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            if key in self.shadow:
                self.shadow[key].copy_(value)
