"""Normalization of state and action with dataset statistics; the policy owns one so that a checkpoint
carries its statistics and evaluation never recomputes them."""

from __future__ import annotations

import torch
from torch import nn

STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99")
STD_FLOOR = 1e-6


class Normalizer(nn.Module):
    """mean_std: (x-mean)/std; min_max and quantile: map [lo, hi] to [-1, 1]; none: identity."""

    def __init__(self, stats: dict[str, dict[str, list[float]]], modes: dict[str, str] | None = None) -> None:
        super().__init__()
        self.stats = {
            key: {name: list(map(float, entry[name])) for name in STAT_NAMES if name in entry}
            for key, entry in stats.items()
        }
        self.modes = dict(modes or {})
        for key, entry in self.stats.items():
            for name in STAT_NAMES:
                if name in entry:
                    self.register_buffer(f"{key}_{name}", torch.tensor(entry[name], dtype=torch.float32), persistent=False)

    def mode(self, key: str) -> str:
        return self.modes.get(key, "mean_std")

    def _scale_shift(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        mode = self.mode(key)
        if key not in self.stats or mode == "none":
            return None
        if mode == "mean_std":
            return getattr(self, f"{key}_std").clamp_min(STD_FLOOR), getattr(self, f"{key}_mean")
        low, high = ("min", "max") if mode == "min_max" else ("q01", "q99")
        lo, hi = getattr(self, f"{key}_{low}"), getattr(self, f"{key}_{high}")
        half_range = (hi - lo) / 2
        # a dimension that never moved is centred, not divided by ~0 (see atlas.data.stats.floor_std)
        return torch.where(half_range < STD_FLOOR, torch.ones_like(half_range), half_range), (hi + lo) / 2

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        params = self._scale_shift(key)
        if params is None:
            return x
        scale, shift = params
        return (x - shift.to(x.dtype)) / scale.to(x.dtype)

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        params = self._scale_shift(key)
        if params is None:
            return x
        scale, shift = params
        return x * scale.to(x.dtype) + shift.to(x.dtype)

    def normalized_std(self, key: str) -> torch.Tensor | None:
        """Per-dimension std of `key` after normalization: ≈1 for mean_std, std/half-range for min_max and
        quantile, the raw std for none. State noise scales with it so the SNR holds in every mode."""
        if key not in self.stats or "std" not in self.stats[key]:
            return None
        std = getattr(self, f"{key}_std")
        params = self._scale_shift(key)
        return std if params is None else std / params[0]

    def to_dict(self) -> dict:
        return {"stats": self.stats, "modes": self.modes}

    @classmethod
    def from_dict(cls, data: dict) -> Normalizer:
        if "mixture" in data:  # a policy trained on data.mixture: every dataset's statistics
            from atlas.data.mixture_normalizer import MixtureNormalizer

            return MixtureNormalizer.from_dict(data)
        return cls(data["stats"], data.get("modes"))
