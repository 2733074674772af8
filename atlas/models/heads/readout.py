"""The `mlp` denoiser (Octo style): the fusion transformer runs once per observation into a readout token,
and a small residual MLP does the denoising steps from that summary.

Why: with action tokens in the transformer (pi0/RDT, the `transformer` denoiser) every training sample and
every sampling step pays for the whole transformer over 1 + H more tokens. On short sequences (state +
language: 3 tokens instead of 11) the readout makes atlas-small's step several times cheaper on a CPU, less
with a camera, whose ResNet then dominates (benchmarks/denoiser.py measures the model step and the loop's
step apart; figures in benchmarks/RESULTS.md), lets one observation
train several (noise, time) draws for the price of the MLP, and runs the transformer once per chunk at
inference instead of once per denoising step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from atlas.models.layers import sinusoidal

TIME_FEATURES = 64
Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(nn.functional.silu(self.norm(x)))


class ReadoutDenoiser(nn.Module):
    """readout query → fusion → summary [B, W]; (summary, noisy chunk, time) → MLP → prediction [B, H, A]."""

    def __init__(self, action_dim: int, horizon: int, width: int, mlp_width: int, mlp_depth: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.norm = nn.LayerNorm(width)
        self.inp = nn.Linear(width + horizon * action_dim + TIME_FEATURES, mlp_width)
        self.blocks = nn.Sequential(*(ResidualBlock(mlp_width) for _ in range(mlp_depth)))
        self.out_norm = nn.LayerNorm(mlp_width)
        self.out = nn.Linear(mlp_width, horizon * action_dim)

    def bind(self, run: Callable[[torch.Tensor], torch.Tensor], batch_size: int, repeats: int = 1) -> Predictor:
        """Run the transformer once; the returned predictor takes x [repeats*B, H, A] (draw j of observation
        i at row j*B + i) and t [repeats*B] in the head's time units."""
        summary = self.norm(run(self.query.expand(batch_size, -1, -1))[:, -1])
        summary = summary.repeat(repeats, 1) if repeats > 1 else summary

        def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            time = sinusoidal(t, TIME_FEATURES).to(x.dtype)
            h = self.blocks(self.inp(torch.cat([summary.to(x.dtype), x.flatten(1), time], dim=-1)))
            return self.out(nn.functional.silu(self.out_norm(h))).view_as(x)

        return predict
