"""`l1`: direct regression of the chunk from learned per-step queries (ACT-style), L1 loss.

Deterministic, one pass; with two equally likely modes it lands between them, which is why the
generative heads exist."""

from __future__ import annotations

import torch

from atlas.models.heads.base import ActionHead, Runner


class L1Head(ActionHead):
    uses_time = False
    uses_noisy_actions = False

    def tokens(self, noisy: torch.Tensor | None = None, t: torch.Tensor | None = None, batch_size: int = 1) -> torch.Tensor:
        return self.pos_embed.expand(batch_size, -1, -1)

    def _regress(self, run: Runner, batch_size: int) -> torch.Tensor:
        return self.decode(run(self.tokens(batch_size=batch_size)))

    def loss(self, actions: torch.Tensor, run: Runner) -> torch.Tensor:
        return (self._regress(run, actions.shape[0]) - actions).abs()

    def sample(self, run: Runner, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._regress(run, batch_size)
