"""Parameter counts per part (trainable / frozen) for `atlas plan`, from a shapes-only (meta) build."""

from __future__ import annotations

from atlas.data.episodes import DatasetMeta
from atlas.models.config import ModelConfig
from atlas.models.registry import build_policy_on_meta


def count_parameters(preset_or_cfg: str | ModelConfig, meta: DatasetMeta) -> dict[str, dict[str, int]]:
    """{part: {"trainable": n, "frozen": n}} per top-level module (vision, language, fusion, ...) plus "total"."""
    cfg = ModelConfig(preset=preset_or_cfg) if isinstance(preset_or_cfg, str) else preset_or_cfg
    policy = build_policy_on_meta(cfg, meta)
    counts: dict[str, dict[str, int]] = {}
    for name, param in policy.named_parameters():
        part = counts.setdefault(name.split(".")[0], {"trainable": 0, "frozen": 0})
        part["trainable" if param.requires_grad else "frozen"] += param.numel()
    counts["total"] = {
        key: sum(part[key] for part in counts.values()) for key in ("trainable", "frozen")
    }
    return counts
