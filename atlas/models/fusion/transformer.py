"""The fusion transformer: pre-norm blocks over [language, vision, state, time/noise, action] tokens.

Joint mode runs one self-attention sequence over all tokens. Cross-attention mode (RDT) keeps the
state/noise/action tokens as the sequence and lets every block also attend to the language+vision
tokens, so long image sequences cost attention only once per block, not quadratically. With
`alternate_cross_attention` (RDT-1B's own pattern) even blocks attend to the language token and odd
blocks to the vision tokens, so only half the blocks project the long image sequence to keys/values.

Under autocast the condition is cast to the autocast dtype once, before the blocks: otherwise every
block's key/value projection casts (and keeps for backward) its own half-precision copy of it. RDT's
conditions are separate bf16 tensors shared by all blocks; this keeps Atlas's activations the same shape.
"""

from __future__ import annotations

import torch
from torch import nn

from atlas.models.fusion.config import FusionConfig
from atlas.models.layers import Block, maybe_checkpoint

# AtlasPolicy's condition layout (policy.py): [language (1 token), vision (T*N*L tokens)].
LANGUAGE_TOKENS = 1


def autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast would run matmuls on for x's device, or None when autocast is off."""
    device = x.device.type
    try:
        return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    except (AttributeError, RuntimeError, TypeError):  # torch < 2.4 or a device without autocast
        return None


class FusionTransformer(nn.Module):
    def __init__(self, cfg: FusionConfig, dropout: float = 0.0) -> None:
        super().__init__()
        self.cross_attention = cfg.cross_attention
        self.alternate = cfg.cross_attention and cfg.alternate_cross_attention
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.num_heads, cfg.mlp_ratio, cfg.qk_norm, cfg.cross_attention, dropout=dropout)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.width)
        self.gradient_checkpointing = False

    def contexts(self, condition: torch.Tensor) -> list[torch.Tensor]:
        """What block i cross-attends to is contexts[i % len(contexts)]: the whole condition, or RDT's
        alternation of language and vision (an empty part falls back to the other)."""
        dtype = autocast_dtype(condition)
        if dtype is not None and condition.is_floating_point():
            condition = condition.to(dtype)
        if not self.alternate:
            return [condition]
        # contiguous once here: a token slice of a batch is strided, and each block's projection would copy it
        parts = [condition[:, :LANGUAGE_TOKENS].contiguous(), condition[:, LANGUAGE_TOKENS:].contiguous()]
        return [p for p in parts if p.shape[1] > 0] or [condition]

    def forward(self, condition: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """condition [B, Lc, W] (language, vision), tokens [B, Lt, W] (state, time, actions) → tokens' outputs."""
        if self.cross_attention:
            x, contexts = tokens, self.contexts(condition)
        else:
            x, contexts = torch.cat([condition, tokens], dim=1), [None]
        for i, block in enumerate(self.blocks):
            context = contexts[i % len(contexts)]
            x = maybe_checkpoint(block, x, context, enabled=self.gradient_checkpointing and self.training)
        return self.norm(x)[:, -tokens.shape[1] :]
