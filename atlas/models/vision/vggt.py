"""`vggt`: a module with VGGT-1B's aggregator shapes (Wang et al. 2025, facebookresearch/vggt).

A DINOv2 ViT-L/14 (4 register tokens) embeds every frame; then per-frame camera + register tokens join
the patch tokens and 24 frame-attention / 24 global-attention blocks alternate (width 1024, 16 heads,
QK-norm, 2D RoPE). Frame blocks attend within one image, global blocks across all images of a sample
(cameras x history), which is what makes VGGT multi-view aware. Module names follow VGGT's
`aggregator.*` keys so its `model.safetensors` loads directly. Output: patch tokens of the last
frame/global pair concatenated (2 x width), as VGGT's heads consume them.
"""

from __future__ import annotations

import torch
from torch import nn

from atlas.config.errors import ConfigError
from atlas.models.layers import Block, maybe_checkpoint
from atlas.models.vision.backbone import Backbone
from atlas.models.vision.vit import resize_pos_embed

VGGT_SIZES = {"1b": {"width": 1024, "depth": 24, "num_heads": 16, "patch_size": 14, "image_size": 518}}
NUM_REGISTERS = 4


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class DinoV2(nn.Module):
    """DINOv2 ViT with registers; returns normalized patch tokens [N, h*w, C]."""

    def __init__(self, width: int, depth: int, num_heads: int, patch: int, native_size: int) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(patch, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_tokens = nn.Parameter(torch.zeros(1, NUM_REGISTERS, width))
        grid = native_size // patch
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + grid * grid, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, num_heads, layer_scale=1e-5) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.checkpointing = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2) + resize_pos_embed(self.pos_embed[:, 1:], h, w)
        n = x.shape[0]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(n, -1, -1)
        x = torch.cat([cls, self.register_tokens.expand(n, -1, -1), x], dim=1)
        for block in self.blocks:
            x = maybe_checkpoint(block, x, enabled=self.checkpointing)
        return self.norm(x)[:, 1 + NUM_REGISTERS :], (h, w)


class VGGTAggregator(Backbone):
    def __init__(
        self,
        size: str = "1b",
        width: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
        patch_size: int | None = None,
        image_size: int | None = None,
        frozen: bool = True,
        weights: str | None = None,
    ) -> None:
        if size not in VGGT_SIZES:
            raise ConfigError(f"model.vision.size: unknown vggt size {size!r}; valid: {', '.join(VGGT_SIZES)}")
        spec = VGGT_SIZES[size]
        width, depth = width or spec["width"], depth or spec["depth"]
        num_heads, patch = num_heads or spec["num_heads"], patch_size or spec["patch_size"]
        super().__init__(image_size or spec["image_size"], frozen)
        self.patch_embed = DinoV2(width, depth, num_heads, patch, spec["image_size"])
        # index 0: the first frame of a sample (VGGT's reference view), index 1: every other frame
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, width) * 1e-6)
        self.register_token = nn.Parameter(torch.randn(1, 2, NUM_REGISTERS, width) * 1e-6)
        make = lambda: Block(width, num_heads, qk_norm=True, layer_scale=0.01)  # noqa: E731
        self.frame_blocks = nn.ModuleList(make() for _ in range(depth))
        self.global_blocks = nn.ModuleList(make() for _ in range(depth))
        self.out_dim = 2 * width
        if weights:
            self.load_weights(weights)
        self.freeze_if_configured()

    def load_weights(self, path: str) -> None:
        """Load VGGT's `aggregator.*` tensors (or bare keys) from a local safetensors file; heads are ignored."""
        from atlas.engine.checkpoint import CheckpointError, load_weights

        try:
            state = load_weights(path)
        except CheckpointError as err:
            raise ConfigError(f"model.vision.weights: {err}") from None
        if any(k.startswith("aggregator.") for k in state):
            state = {k[len("aggregator.") :]: v for k, v in state.items() if k.startswith("aggregator.")}
        missing, _ = self.load_state_dict(state, strict=False)
        if missing:
            raise ConfigError(f"model.vision.weights={path}: {len(missing)} VGGT tensors missing, e.g. {missing[:3]}")

    def _special_tokens(self, b: int, f: int) -> torch.Tensor:
        """[B, F, 1+registers, C]: the reference-view tokens for frame 0, the other set for the rest."""
        tokens = torch.cat([self.camera_token, self.register_token], dim=2)  # [1, 2, 5, C]
        first, rest = tokens[:, :1], tokens[:, 1:].expand(1, f - 1, -1, -1)
        return torch.cat([first, rest], dim=1).expand(b, -1, -1, -1)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        b, f = images.shape[:2]
        patches, (h, w) = self.patch_embed(images.flatten(0, 1))
        c = patches.shape[-1]
        special = self._special_tokens(b, f).reshape(b * f, -1, c)
        x = torch.cat([special, patches], dim=1)  # [B*F, P, C]
        p = x.shape[1]
        ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
        pos = torch.stack([ys.flatten(), xs.flatten()], dim=-1) + 1
        pos = torch.cat([torch.zeros(special.shape[1], 2, dtype=pos.dtype, device=x.device), pos]).unsqueeze(0)
        frame_pos, global_pos = pos.expand(b * f, -1, -1), pos.repeat(1, f, 1).expand(b, -1, -1)
        checkpointing = self.gradient_checkpointing and not self.frozen
        self.patch_embed.checkpointing = checkpointing
        frame_out = global_out = x
        for frame_block, global_block in zip(self.frame_blocks, self.global_blocks):
            x = maybe_checkpoint(frame_block, x.reshape(b * f, p, c), None, frame_pos, enabled=checkpointing)
            frame_out = x
            x = maybe_checkpoint(global_block, x.reshape(b, f * p, c), None, global_pos, enabled=checkpointing)
            global_out = x
        out = torch.cat([frame_out.reshape(b, f, p, c), global_out.reshape(b, f, p, c)], dim=-1)
        return out[:, :, special.shape[1] :], (h, w)
