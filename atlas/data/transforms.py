"""Batch transforms applied on the training device: normalize, state noise, images to float, augmentation."""

from __future__ import annotations

import torch

from atlas.data.config import ImageAugConfig
from atlas.data.normalize import Normalizer


class BatchTransform:
    """Raw collated batch → what the policy's forward expects (normalized state/action, images in [0, 1]).

    Training only: Gaussian state noise at `state_noise_snr` dB — sigma = s / sqrt(10^(snr/10)) with s the
    per-dimension std of the *normalized* state (1 for mean_std, std/half-range for min_max and quantile,
    the raw std for none; `Normalizer.normalized_std`) — and image augmentation. Both draw from torch's
    global RNG, so they are the same on every rank with the same seed and replay after an RNG restore.
    """

    def __init__(
        self,
        normalizer: Normalizer,
        state_noise_snr: float | None = None,
        image_aug: ImageAugConfig | None = None,
    ) -> None:
        self.normalizer = normalizer
        self.state_noise_snr = state_noise_snr
        self.image_aug = image_aug if image_aug is not None and image_aug.enabled else None

    def state_noise_sigma(self, device: torch.device) -> torch.Tensor | None:
        if self.state_noise_snr is None:
            return None
        std = self.normalizer.normalized_std("state")
        scale = 1.0 / (10 ** (self.state_noise_snr / 10)) ** 0.5
        return (std.to(device) if std is not None else torch.ones((), device=device)) * scale

    def __call__(self, batch: dict, device: torch.device, train: bool) -> dict:
        out = {}
        for key, value in batch.items():
            out[key] = value.to(device, non_blocking=True) if torch.is_tensor(value) else value
        out["state"] = self.normalizer.normalize("state", out["state"])
        out["action"] = self.normalizer.normalize("action", out["action"])
        sigma = self.state_noise_sigma(out["state"].device) if train else None
        if sigma is not None:
            noise = torch.randn(out["state"].shape, dtype=out["state"].dtype).to(out["state"].device)
            out["state"] = out["state"] + sigma.to(out["state"].dtype) * noise
        if "images" in out:
            out["images"] = out["images"].float().div_(255.0)
            if train and self.image_aug is not None:
                from atlas.data.augment import augment_images

                out["images"] = augment_images(out["images"], self.image_aug)
        return out
