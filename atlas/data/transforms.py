"""Batch transforms applied on the training device: normalize, state noise, images to float."""

from __future__ import annotations

import torch

from atlas.data.normalize import Normalizer


class BatchTransform:
    """Raw collated batch → what the policy's forward expects (normalized state/action, images in [0, 1])."""

    def __init__(self, normalizer: Normalizer, state_noise_snr: float | None = None) -> None:
        self.normalizer = normalizer
        self.state_noise_snr = state_noise_snr

    def __call__(self, batch: dict, device: torch.device, train: bool) -> dict:
        out = {}
        for key, value in batch.items():
            out[key] = value.to(device, non_blocking=True) if torch.is_tensor(value) else value
        out["state"] = self.normalizer.normalize("state", out["state"])
        out["action"] = self.normalizer.normalize("action", out["action"])
        if train and self.state_noise_snr is not None:
            sigma = 1.0 / (10 ** (self.state_noise_snr / 10)) ** 0.5
            out["state"] = out["state"] + sigma * torch.randn_like(out["state"])
        if "images" in out:
            out["images"] = out["images"].float().div_(255.0)
        return out
