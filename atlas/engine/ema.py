"""Exponential moving average of the weights, kept in fp32 whatever the training precision."""

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
        self._trainable = [n for n, p in model.named_parameters() if p.requires_grad]

    def decay(self, step: int) -> float:
        if self.cfg.decay is not None:
            return self.cfg.decay
        return min(self.cfg.max_decay, 1.0 - (1.0 + (step - 1)) ** -self.cfg.power)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        weight = 1.0 - self.decay(step)
        params = dict(model.named_parameters())
        shadows = [self.shadow[n] for n in self._trainable]
        currents = [params[n].detach().float() for n in self._trainable]
        if shadows:
            torch._foreach_lerp_(shadows, currents, weight)
        for name, buffer in model.named_buffers():
            if name in self.shadow:
                self.shadow[name].copy_(buffer)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            if key in self.shadow:
                self.shadow[key].copy_(value)
