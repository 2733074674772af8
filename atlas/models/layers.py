"""Transformer pieces shared by the ViT, VGGT and fusion stacks: SDPA attention with a backend switch,
2D RoPE, pre-norm blocks, sinusoidal embeddings and block-wise gradient checkpointing."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

# memory_efficient_attention: true restricts SDPA to the flash/memory-efficient kernels (math only as a last
# resort where neither exists); false leaves PyTorch's own dispatch, which on a GPU in bf16/fp16 already
# picks flash when it can. Never pinning the math kernel keeps GPU runs from paying its O(L^2) memory.
EFFICIENT_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def sinusoidal(positions: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[...] float positions → [..., dim] fixed sin/cos features (no parameters, any length)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float().unsqueeze(-1) * freqs
    out = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(out, (0, dim - 2 * half))


def sinusoidal_2d(h: int, w: int, dim: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[h*w, dim] fixed 2D position features: half the channels encode the row, half the column."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    half = dim // 2
    return torch.cat([sinusoidal(ys.flatten(), half), sinusoidal(xs.flatten(), dim - half)], dim=-1)


def rope_2d(x: torch.Tensor, pos: torch.Tensor, base: float = 100.0) -> torch.Tensor:
    """Rotary embedding over (row, col) positions as in VGGT: x [B, h, L, D], pos [B, L, 2] ints."""
    d = x.shape[-1] // 2
    out = []
    for axis, part in enumerate((x[..., :d], x[..., d:])):
        half = part.shape[-1] // 2
        freqs = 1.0 / (base ** (torch.arange(half, device=x.device, dtype=torch.float32) / half))
        angles = pos[..., axis].float().unsqueeze(-1) * freqs  # [B, L, half]
        cos, sin = angles.cos().unsqueeze(1).to(x.dtype), angles.sin().unsqueeze(1).to(x.dtype)
        a, b = part[..., :half], part[..., half:]
        out += [a * cos - b * sin, a * sin + b * cos]
    return torch.cat(out, dim=-1)


class _RMSNormFunction(torch.autograd.Function):
    """y = x * rsqrt(mean(x^2) + eps) * w in float32, keeping only x (its own dtype) and the [..., 1] rsqrt
    for backward, as CUDA's fused kernel does: the spelled-out form (and F.rms_norm's CPU composite, which
    the planner measures) keeps float32 copies of x, which on RDT-1B's 4374 image keys per block is ~0.6 GB
    per sample more than a GPU needs."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        h = x.to(torch.promote_types(x.dtype, torch.float32))
        rstd = torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return (h * rstd * weight.to(h.dtype)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        xhat = x.to(rstd.dtype) * rstd
        gw = grad.to(rstd.dtype) * weight.to(rstd.dtype)
        grad_x = rstd * (gw - xhat * (gw * xhat).mean(-1, keepdim=True))
        grad_w = (grad.to(rstd.dtype) * xhat).reshape(-1, x.shape[-1]).sum(0) if ctx.needs_input_grad[1] else None
        return grad_x.to(x.dtype), None if grad_w is None else grad_w.to(weight.dtype), None


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale, `x * rsqrt(mean(x^2) + eps) * weight` (timm's `RmsNorm`,
    which RDT uses), computed in float32 and cast back; outside autocast, as a norm's own arithmetic."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _RMSNormFunction.apply(x, self.weight, self.eps)


NORMS: dict[str, type[nn.Module]] = {"layer": nn.LayerNorm, "rms": RMSNorm}


class Attention(nn.Module):
    """Multi-head attention on torch SDPA; self-attention (`qkv`) or cross-attention (`q` + `kv`).

    `norm` picks the QK-norm (LayerNorm, or RMSNorm as in RDT); `mask` [B, L_context] (True = attend)
    hides padded context tokens (RDT's variable-length language)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False, cross: bool = False, dropout: float = 0.0,
                 norm: str = "layer"):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.cross = cross
        if cross:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = NORMS[norm](self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = NORMS[norm](self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout
        self.memory_efficient = False

    def _heads(self, x: torch.Tensor, n: int) -> list[torch.Tensor]:
        b, length, _ = x.shape
        return list(x.view(b, length, n, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, pos: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.cross:
            (q,) = self._heads(self.q(x), 1)
            k, v = self._heads(self.kv(context), 2)
        else:
            q, k, v = self._heads(self.qkv(x), 3)
        q, k = self.q_norm(q), self.k_norm(k)
        if pos is not None:
            q, k = rope_2d(q, pos), rope_2d(k, pos)
        dropout = self.dropout if self.training else 0.0
        attn_mask = None if mask is None else mask.view(mask.shape[0], 1, 1, mask.shape[-1])
        if self.memory_efficient:
            with sdpa_kernel(EFFICIENT_BACKENDS):
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        return self.proj(out.transpose(1, 2).flatten(2))


class Mlp(nn.Module):
    """fc1 → tanh-GELU → fc2 (timm's `Mlp` names, which RDT's checkpoints use); `out_dim` defaults to `dim`."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, out_dim: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, out_dim or dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class LayerScale(nn.Module):
    """Per-channel residual scale (DINOv2/VGGT); keeps their checkpoint names (`ls1.gamma`)."""

    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)) [+ cross-attn to context] + mlp(norm(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qk_norm: bool = False,
        cross_attention: bool = False,
        layer_scale: float | None = None,
        dropout: float = 0.0,
        mlp_hidden: int | None = None,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, dropout=dropout)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        if cross_attention:
            self.norm_cross = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, num_heads, qk_norm=qk_norm, cross=True, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_hidden or int(dim * mlp_ratio), dropout)
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, pos: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.ls1(self.attn(self.norm1(x), pos=pos)))
        if context is not None and hasattr(self, "cross_attn"):
            x = x + self.drop(self.cross_attn(self.norm_cross(x), context=context))
        return x + self.ls2(self.mlp(self.norm2(x)))


def maybe_checkpoint(fn: Callable, *args, enabled: bool) -> torch.Tensor:
    """Run `fn(*args)`, recomputing it in backward when enabled and gradients are being recorded."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def set_memory_efficient_attention(module: nn.Module, enabled: bool) -> None:
    """Pick the flash/efficient SDPA kernels (where the device has them) or math for every attention layer."""
    for sub in module.modules():
        if isinstance(sub, Attention):
            sub.memory_efficient = enabled


def mlp_adaptor(in_dim: int, out_dim: int, layers: int) -> nn.Module:
    """Projection into the fusion width: Linear (layers=1) or RDT's mlpNx_gelu."""
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    mods: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    for _ in range(layers - 1):
        mods += [nn.GELU(approximate="tanh"), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*mods)


def freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
