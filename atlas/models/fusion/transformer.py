"""The fusion transformer: pre-norm blocks over [language, vision, state, time/noise, action] tokens.

Joint mode runs one self-attention sequence over all tokens. Cross-attention mode (RDT) keeps the
state/noise/action tokens as the sequence and lets every block also attend to the language+vision
tokens, so long image sequences cost attention only once per block, not quadratically.
"""

from __future__ import annotations

import torch
from torch import nn

from atlas.models.fusion.config import FusionConfig
from atlas.models.layers import Block, maybe_checkpoint


class FusionTransformer(nn.Module):
    def __init__(self, cfg: FusionConfig, dropout: float = 0.0) -> None:
        super().__init__()
        self.cross_attention = cfg.cross_attention
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.num_heads, cfg.mlp_ratio, cfg.qk_norm, cfg.cross_attention, dropout=dropout)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.width)
        self.gradient_checkpointing = False

    def forward(self, condition: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """condition [B, Lc, W] (language, vision), tokens [B, Lt, W] (state, time, actions) → tokens' outputs."""
        if self.cross_attention:
            x, context = tokens, condition
        else:
            x, context = torch.cat([condition, tokens], dim=1), None
        for block in self.blocks:
            x = maybe_checkpoint(block, x, context, enabled=self.gradient_checkpointing and self.training)
        return self.norm(x)[:, -tokens.shape[1] :]
