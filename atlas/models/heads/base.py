"""What the action heads share: the tokens they feed the fusion transformer and how they read it out.

A head never sees the observation: it gets `run(head_tokens) -> hidden of the action tokens`, a closure
over the (once-computed) condition tokens, so a sampler can call the transformer many times per chunk.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from atlas.models.layers import sinusoidal

Runner = Callable[[torch.Tensor], torch.Tensor]
TIME_FEATURES = 256


class ActionHead(nn.Module):
    """Noisy actions [B, H, A] + a time token → fusion → per-step outputs [B, H, A]."""

    uses_time = True
    uses_noisy_actions = True  # False for heads that regress from queries alone (no unused input layer)

    def __init__(self, action_dim: int, horizon: int, width: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.horizon = horizon
        if self.uses_noisy_actions:  # an unused layer would break DDP (find_unused_parameters=False)
            self.action_in = nn.Linear(action_dim, width)
        self.pos_embed = nn.Parameter(torch.randn(1, horizon, width) * 0.02)
        if self.uses_time:
            self.time_mlp = nn.Sequential(nn.Linear(TIME_FEATURES, width), nn.SiLU(), nn.Linear(width, width))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, action_dim)

    def tokens(self, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """[B, 1+H, W]: the time token (t in model units, e.g. 0..999) then one token per chunk step."""
        time = self.time_mlp(sinusoidal(t, TIME_FEATURES).to(noisy.dtype)).unsqueeze(1)
        return torch.cat([time, self.action_in(noisy) + self.pos_embed], dim=1)

    def decode(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(self.out_norm(hidden[:, -self.horizon :]))

    def loss(self, actions: torch.Tensor, run: Runner) -> torch.Tensor:
        """Per-element loss [B, H, A] for normalized target actions (the policy applies the pad mask)."""
        raise NotImplementedError

    def sample(self, run: Runner, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def noise(self, batch_size: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(batch_size, self.horizon, self.action_dim, device=device, generator=generator)
