"""RDT's building blocks (models/rdt/blocks.py of thu-ml/RoboticsDiffusionTransformer), on Atlas's
shared SDPA attention and MLP: the timestep/frequency embedder, the block (RMSNorm → self-attention,
RMSNorm → cross-attention to one condition, RMSNorm → GELU MLP of ratio 1, each residual; QK-norm by
RMSNorm), and the final layer. Module names follow RDT's state dict."""

from __future__ import annotations

import torch
from torch import nn

from atlas.models.layers import Attention, Mlp, RMSNorm, sinusoidal

FREQUENCY_FEATURES = 256


class TimestepEmbedder(nn.Module):
    """Scalar (diffusion step, control frequency) → 256 sin/cos features (cos first, as GLIDE) → MLP."""

    def __init__(self, hidden: int, features: int = FREQUENCY_FEATURES) -> None:
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(t, self.features).to(self.mlp[0].weight.dtype))


class RDTBlock(nn.Module):
    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(hidden)
        self.attn = Attention(hidden, num_heads, qk_norm=True, norm="rms")
        self.norm2 = RMSNorm(hidden)
        self.cross_attn = Attention(hidden, num_heads, qk_norm=True, cross=True, norm="rms")
        self.norm3 = RMSNorm(hidden)
        self.ffn = Mlp(hidden, hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), context=context, mask=mask)
        return x + self.ffn(self.norm3(x))


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.norm_final = RMSNorm(hidden)
        self.ffn_final = Mlp(hidden, hidden, out_dim=out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_final(self.norm_final(x))
