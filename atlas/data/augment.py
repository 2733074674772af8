"""Batched image augmentation on the training device in plain torch: random resized crop (one affine
`grid_sample` for the whole batch) and colour jitter (brightness, contrast, saturation, hue).

Every random number comes from torch's global CPU generator, drawn in one call per kind, so ranks
with the same seed draw the same values and restoring the RNG state on resume replays them. One draw
per (sample, camera) is shared by the sample's history frames, so motion between frames is kept.
Hue is a rotation of the chroma plane in YIQ space, a cheap close stand-in for an HSV hue shift.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from atlas.data.config import ImageAugConfig

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_GRAY = torch.tensor([0.299, 0.587, 0.114])


def _uniform(n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n)


def random_crop_resize(images: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float]) -> torch.Tensor:
    """images [K, F, 3, H, W] (F frames share a crop) → same shape, each a random crop resized back."""
    k, f, c, h, w = images.shape
    area = _uniform(k, *scale)
    log_ratio = _uniform(k, math.log(ratio[0]), math.log(ratio[1])).exp()
    sx = (area * log_ratio).sqrt().clamp(max=1.0)  # crop width as a fraction of the image
    sy = (area / log_ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(k) * 2 - 1) * (1 - sx)
    cy = (torch.rand(k) * 2 - 1) * (1 - sy)
    theta = torch.zeros(k, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, sy, cy
    theta = theta.to(images.device, images.dtype).repeat_interleave(f, dim=0)
    flat = images.reshape(k * f, c, h, w)
    grid = F.affine_grid(theta, [k * f, c, h, w], align_corners=False)
    return F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False).reshape(k, f, c, h, w)


def colour_jitter(images: torch.Tensor, cfg: ImageAugConfig) -> torch.Tensor:
    """images [K, F, 3, H, W] in [0, 1] → jittered, clamped to [0, 1]; factors per K."""
    k = images.shape[0]
    device, dtype = images.device, images.dtype

    def factor(strength: float) -> torch.Tensor:
        return _uniform(k, max(0.0, 1 - strength), 1 + strength).to(device, dtype).view(k, 1, 1, 1, 1)

    brightness, contrast, saturation = factor(cfg.brightness), factor(cfg.contrast), factor(cfg.saturation)
    hue = _uniform(k, -cfg.hue, cfg.hue).to(device, dtype) * (2 * math.pi)
    gray_w = _GRAY.to(device, dtype).view(1, 1, 3, 1, 1)
    x = images * brightness
    gray = (x * gray_w).sum(2, keepdim=True)
    x = (x - gray.mean(dim=(-1, -2), keepdim=True)) * contrast + gray.mean(dim=(-1, -2), keepdim=True)
    gray = (x * gray_w).sum(2, keepdim=True)
    x = (x - gray) * saturation + gray
    if cfg.hue > 0:
        to_yiq = _RGB_TO_YIQ.to(device, dtype)
        cos, sin = hue.cos(), hue.sin()
        rot = torch.zeros(k, 3, 3, device=device, dtype=dtype)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        matrix = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # [K, 3, 3] RGB → RGB
        x = torch.einsum("kij,kfjhw->kfihw", matrix, x)
    return x.clamp_(0.0, 1.0)


def augment_images(images: torch.Tensor, cfg: ImageAugConfig) -> torch.Tensor:
    """images [B, T, N, 3, H, W] float in [0, 1] → augmented; one draw per (sample, camera)."""
    b, t, n, c, h, w = images.shape
    per = images.permute(0, 2, 1, 3, 4, 5).reshape(b * n, t, c, h, w)
    if cfg.crop_scale[0] < 1.0 or cfg.crop_ratio != (1.0, 1.0):
        per = random_crop_resize(per, cfg.crop_scale, cfg.crop_ratio)
    per = colour_jitter(per, cfg)
    return per.reshape(b, n, t, c, h, w).permute(0, 2, 1, 3, 4, 5).contiguous()
