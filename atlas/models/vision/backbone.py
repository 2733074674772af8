"""What every vision backbone shares: resizing, ImageNet normalization, and freezing.

A frozen backbone keeps eval mode even when the policy trains and runs under no_grad, so it costs no
activation memory and its weights cannot change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """images [B, F, 3, H, W] in [0, 1] → tokens [B, F, L, out_dim] and their (h, w) grid."""

    out_dim: int

    def __init__(self, image_size: int | None, frozen: bool) -> None:
        super().__init__()
        self.image_size = image_size
        self.frozen = frozen
        self.gradient_checkpointing = False
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def freeze_if_configured(self) -> None:
        """Call at the end of a subclass's __init__, once its parameters exist."""
        if self.frozen:
            for p in self.parameters():
                p.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> Backbone:
        return super().train(mode and not self.frozen)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        b, f = images.shape[:2]
        x = images.flatten(0, 1)
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = ((x - self.pixel_mean.to(x.dtype)) / self.pixel_std.to(x.dtype)).view(b, f, *x.shape[1:])
        if self.frozen:
            with torch.no_grad():
                return self.encode(x)
        return self.encode(x)
