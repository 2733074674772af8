"""`resnet_small`: a four-stage ResNet with GroupNorm, small enough to train on a CPU.

GroupNorm rather than BatchNorm so small micro-batches, gradient accumulation and frozen use all behave
the same. The stem downsamples by 4 (conv stride 2 + max-pool) as in ResNet; at 64 px the output grid
is 2x2 with 8*width channels, at 224 px 7x7.
"""

from __future__ import annotations

import torch
from torch import nn

from atlas.models.vision.backbone import Backbone


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = _norm(cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        return self.act(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNetSmall(Backbone):
    def __init__(self, width: int = 16, image_size: int | None = None, frozen: bool = False) -> None:
        super().__init__(image_size, frozen)
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 5, 2, 2, bias=False), _norm(width), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        )
        channels = [width, 2 * width, 4 * width, 8 * width]
        stages, cin = [], width
        for cout, stride in zip(channels, (1, 2, 2, 2)):
            stages.append(BasicBlock(cin, cout, stride))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.out_dim = channels[-1]
        self.freeze_if_configured()

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        b, f = images.shape[:2]
        fmap = self.stages(self.stem(images.flatten(0, 1)))
        h, w = fmap.shape[-2:]
        return fmap.flatten(2).transpose(1, 2).reshape(b, f, h * w, -1), (h, w)
