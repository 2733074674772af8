"""`vit`: a plain ViT (tiny/small/base, and SigLIP-so400m's shape for RDT) returning patch tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atlas.config.errors import ConfigError
from atlas.models.layers import Block, maybe_checkpoint
from atlas.models.vision.backbone import Backbone

# name: (width, depth, heads, mlp hidden, patch, native image size)
VIT_SIZES: dict[str, tuple[int, int, int, int, int, int]] = {
    "tiny": (192, 12, 3, 768, 16, 224),
    "small": (384, 12, 6, 1536, 16, 224),
    "base": (768, 12, 12, 3072, 16, 224),
    "so400m": (1152, 27, 16, 4304, 14, 384),
}


def resize_pos_embed(pos: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[1, g*g, C] learned grid → [1, h*w, C] by bicubic interpolation (other image sizes)."""
    g = int(round(pos.shape[1] ** 0.5))
    if (g, g) == (h, w):
        return pos
    grid = pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)
    return F.interpolate(grid.float(), size=(h, w), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2).to(pos.dtype)


class ViT(Backbone):
    def __init__(
        self,
        size: str = "small",
        width: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
        patch_size: int | None = None,
        image_size: int | None = None,
        frozen: bool = False,
    ) -> None:
        if size not in VIT_SIZES:
            raise ConfigError(f"model.vision.size: unknown vit size {size!r}; valid: {', '.join(VIT_SIZES)}")
        w0, d0, h0, m0, p0, s0 = VIT_SIZES[size]
        width, depth, num_heads, patch = width or w0, depth or d0, num_heads or h0, patch_size or p0
        image_size = image_size or s0
        super().__init__(image_size, frozen)
        mlp_hidden = m0 if width == w0 else 4 * width
        self.patch_embed = nn.Conv2d(3, width, patch, patch)
        grid = image_size // patch
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, num_heads, mlp_hidden=mlp_hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out_dim = width
        self.freeze_if_configured()

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        b, f = images.shape[:2]
        x = self.patch_embed(images.flatten(0, 1))
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2) + resize_pos_embed(self.pos_embed, h, w)
        for block in self.blocks:
            x = maybe_checkpoint(block, x, enabled=self.gradient_checkpointing and not self.frozen)
        return self.norm(x).reshape(b, f, h * w, -1), (h, w)
