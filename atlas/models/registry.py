"""Policies by preset name (`model.preset`) and the one entry point the loop calls: `build_policy`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from atlas.config.errors import ConfigError
from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.config import ModelConfig
from atlas.registry import registrar

POLICIES: dict[str, Callable] = {}


register_policy = registrar(POLICIES)


def _import_builtin() -> None:
    """Importing the modules registers their presets."""
    import atlas.models.mlp  # noqa: F401
    import atlas.models.policy  # noqa: F401


def build_policy(
    cfg: ModelConfig,
    meta: DatasetMeta,
    normalizer: Normalizer,
    gradient_checkpointing: bool = False,
    memory_efficient_attention: bool = False,
    device: str | torch.device | None = None,
    load_weights: bool = True,
):
    """Build the preset's policy. device="meta" builds shapes only (no weights read, no memory) for planning;
    load_weights=False skips reading pretrained encoder weights (the planner's probe under FakeTensorMode).
    The one builder: the loop, `atlas eval`, the planner and parameter counting all call it."""
    _import_builtin()
    if cfg.preset not in POLICIES:
        import difflib

        guess = difflib.get_close_matches(cfg.preset, list(POLICIES), n=1)
        hint = f"did you mean {guess[0]}? " if guess else ""
        raise ConfigError(f"model.preset: unknown preset {cfg.preset!r}; {hint}valid: {', '.join(sorted(POLICIES))}")
    cls = POLICIES[cfg.preset]
    on_meta = device is not None and torch.device(device).type == "meta"
    kwargs = {}
    if getattr(cls, "accepts_memory_options", False):
        kwargs = {
            "gradient_checkpointing": gradient_checkpointing,
            "memory_efficient_attention": memory_efficient_attention,
            "load_weights": load_weights and not on_meta,
        }
    if on_meta:
        with torch.device("meta"):
            return cls(cfg, meta, normalizer, **kwargs)
    policy = cls(cfg, meta, normalizer, **kwargs)
    return policy.to(device) if device is not None else policy
