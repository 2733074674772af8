"""Policies by preset name (`model.preset`)."""

from __future__ import annotations

from collections.abc import Callable

from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.config import ModelConfig

POLICIES: dict[str, Callable] = {}


def register_policy(name: str) -> Callable:
    def wrap(cls):
        POLICIES[name] = cls
        return cls

    return wrap


def _import_builtin() -> None:
    """Importing the modules registers their presets."""
    import atlas.models.mlp  # noqa: F401


def build_policy(cfg: ModelConfig, meta: DatasetMeta, normalizer: Normalizer):
    _import_builtin()
    if cfg.preset not in POLICIES:
        raise ValueError(f"model.preset: unknown preset {cfg.preset!r}; valid: {', '.join(sorted(POLICIES))}")
    return POLICIES[cfg.preset](cfg, meta, normalizer)
