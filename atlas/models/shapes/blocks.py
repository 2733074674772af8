"""Layers of the planning-only shape models: a pre-norm ViT tower, a Gemma/Llama decoder layer (grouped-query
attention, gated MLP, RMSNorm or adaRMSNorm) and a linear that can carry a LoRA adapter.

They reproduce parameter shapes and what a forward saves for backward, nothing more: no pretrained weights,
no tokenizer, no rotary embedding (it holds no parameters and saves nothing a planner needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass(frozen=True)
class DecoderShape:
    """One decoder stack: width, layers, query heads, key/value heads, head size, MLP size, vocabulary (0: none)."""

    width: int
    depth: int
    heads: int
    kv_heads: int
    head_dim: int
    mlp: int
    vocab: int = 0


@dataclass(frozen=True)
class TowerShape:
    """One ViT tower: width, layers, heads, MLP size, patch and image size; `shuffle` merges s x s patches
    into one token (SmolVLM's pixel shuffle)."""

    width: int
    depth: int
    heads: int
    mlp: int
    patch: int
    image: int
    shuffle: int = 1

    @property
    def tokens(self) -> int:
        return (self.image // self.patch) ** 2 // self.shuffle**2

    @property
    def out_dim(self) -> int:
        return self.width * self.shuffle**2


class AdaptedLinear(nn.Module):
    """nn.Linear whose base weight is frozen when `rank` > 0 and a trainable low-rank pair is added (LoRA)."""

    def __init__(self, d_in: int, d_out: int, rank: int = 0, bias: bool = False) -> None:
        super().__init__()
        self.base = nn.Linear(d_in, d_out, bias=bias)
        self.rank = rank
        if rank:
            self.base.requires_grad_(False)
            self.lora_a = nn.Linear(d_in, rank, bias=False)
            self.lora_b = nn.Linear(rank, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        return out + self.lora_b(self.lora_a(x)) if self.rank else out


class RMSNorm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype)), None


class AdaRMSNorm(nn.Module):
    """pi0.5's expert norm: a dense layer maps the flow-matching time embedding to scale, shift and gate
    (openpi src/openpi/models/gemma.py RMSNorm, `cond` branch)."""

    def __init__(self, width: int, cond_dim: int) -> None:
        super().__init__()
        self.modulation = nn.Linear(cond_dim, 3 * width)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        scale, shift, gate = self.modulation(cond)[:, None, :].chunk(3, dim=-1)
        return F.rms_norm(x, (x.shape[-1],)) * (1 + scale) + shift, gate


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer, split in two halves so that two stacks (a VLM and its action expert) can
    attend jointly: `qkv` gives this stack's queries/keys/values, `finish` adds attention output and MLP."""

    def __init__(self, shape: DecoderShape, rank: int = 0, cond_dim: int = 0, kv_in: int | None = None) -> None:
        super().__init__()
        s = shape
        self.shape = s
        self.input_norm = AdaRMSNorm(s.width, cond_dim) if cond_dim else RMSNorm(s.width)
        self.post_norm = AdaRMSNorm(s.width, cond_dim) if cond_dim else RMSNorm(s.width)
        self.q = AdaptedLinear(s.width, s.heads * s.head_dim, rank)
        kv_width = kv_in if kv_in is not None else s.width
        self.k = AdaptedLinear(kv_width, s.kv_heads * s.head_dim, rank)
        self.v = AdaptedLinear(kv_width, s.kv_heads * s.head_dim, rank)
        self.o = AdaptedLinear(s.heads * s.head_dim, s.width, rank)
        self.gate = AdaptedLinear(s.width, s.mlp, rank)
        self.up = AdaptedLinear(s.width, s.mlp, rank)
        self.down = AdaptedLinear(s.mlp, s.width, rank)

    def heads_of(self, x: torch.Tensor, count: int) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, count, self.shape.head_dim).transpose(1, 2)

    def qkv(self, x: torch.Tensor, cond: torch.Tensor | None = None, kv_source: torch.Tensor | None = None):
        h, gate = self.input_norm(x, cond)
        src = h if kv_source is None else kv_source
        q = self.heads_of(self.q(h), self.shape.heads)
        k = self.heads_of(self.k(src), self.shape.kv_heads)
        v = self.heads_of(self.v(src), self.shape.kv_heads)
        return q, k, v, gate

    def finish(self, x: torch.Tensor, attended: torch.Tensor, gate: torch.Tensor | None,
               cond: torch.Tensor | None = None) -> torch.Tensor:
        b, _, n, _ = attended.shape
        out = self.o(attended.transpose(1, 2).reshape(b, n, -1))
        x = x + (out * gate if gate is not None else out)
        h, gate2 = self.post_norm(x, cond)
        out = self.down(F.gelu(self.gate(h), approximate="tanh") * self.up(h))
        return x + (out * gate2 if gate2 is not None else out)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """SDPA with grouped-query heads (keys/values repeated to the query heads)."""
    if k.shape[1] != q.shape[1]:
        repeat = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


class ViTBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, mlp), nn.Linear(mlp, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class ViTTower(nn.Module):
    """Patch embedding, learned positions and pre-norm blocks (SigLIP / DINOv2 shapes)."""

    def __init__(self, shape: TowerShape, depth: int | None = None) -> None:
        super().__init__()
        self.shape = shape
        self.patch = nn.Conv2d(3, shape.width, shape.patch, shape.patch)
        self.pos = nn.Parameter(torch.zeros(1, (shape.image // shape.patch) ** 2, shape.width))
        self.blocks = nn.ModuleList(ViTBlock(shape.width, shape.heads, shape.mlp) for _ in range(depth or shape.depth))
        self.norm = nn.LayerNorm(shape.width)
        self.gradient_checkpointing = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch(images).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if self.gradient_checkpointing and self.training else block(x)
        x = self.norm(x)
        s = self.shape.shuffle
        if s > 1:  # pixel shuffle: s x s neighbouring patches become one token of s*s*width features
            b, n, w = x.shape
            side = int(n**0.5)
            x = x.view(b, side // s, s, side // s, s, w).permute(0, 1, 3, 2, 4, 5).reshape(b, n // s**2, s * s * w)
        return x
