"""Backbone features → fusion tokens: optional grid pooling, projection to the fusion width, and
camera, time (history frame) and 2D position embeddings so the fusion can tell views and frames apart."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atlas.models.layers import mlp_adaptor, sinusoidal, sinusoidal_2d


class VisionProjector(nn.Module):
    def __init__(self, in_dim: int, width: int, num_cameras: int, pool_grid: int | None, adaptor_layers: int = 1):
        super().__init__()
        self.pool_grid = pool_grid
        self.proj = mlp_adaptor(in_dim, width, adaptor_layers)
        self.camera_embed = nn.Embedding(max(1, num_cameras), width)
        nn.init.normal_(self.camera_embed.weight, std=0.02)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int], num_cameras: int) -> torch.Tensor:
        """tokens [B, T*N, L, C] (frames ordered time-major) → [B, T*N*L', width]."""
        b, frames, _, c = tokens.shape
        h, w = grid
        if self.pool_grid is not None and (h, w) != (self.pool_grid, self.pool_grid):
            fmap = tokens.reshape(b * frames, h, w, c).permute(0, 3, 1, 2)
            fmap = F.adaptive_avg_pool2d(fmap, self.pool_grid)
            h = w = self.pool_grid
            tokens = fmap.flatten(2).transpose(1, 2).reshape(b, frames, h * w, c)
        x = self.proj(tokens)
        width = x.shape[-1]
        steps = frames // num_cameras
        camera = self.camera_embed(torch.arange(num_cameras, device=x.device)).repeat(steps, 1)  # [F, width]
        time = sinusoidal(torch.arange(steps, device=x.device).repeat_interleave(num_cameras), width)
        space = sinusoidal_2d(h, w, width, x.device)
        x = x + (camera + time.to(x.dtype)).unsqueeze(1) + space.to(x.dtype)
        return x.flatten(1, 2)
