"""Parameter counts per top-level module (trainable / frozen), for `atlas plan` and the planner's probe.

The one counter: the planner counts a shapes-only (meta device) build of the policy the loop would train.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.config import ModelConfig


@dataclass
class ParamCounts:
    total: int
    trainable: int
    frozen: int
    trainable_bytes: int  # in the dtype the model holds them
    frozen_bytes: int
    by_module: dict[str, dict[str, int]]  # top-level module -> {trainable, frozen}


def count_params(model: nn.Module) -> ParamCounts:
    by_module: dict[str, dict[str, int]] = {}
    totals = {"trainable": 0, "frozen": 0, "trainable_bytes": 0, "frozen_bytes": 0}
    for name, p in model.named_parameters():
        kind = "trainable" if p.requires_grad else "frozen"
        entry = by_module.setdefault(name.split(".")[0], {"trainable": 0, "frozen": 0})
        entry[kind] += p.numel()
        totals[kind] += p.numel()
        totals[f"{kind}_bytes"] += p.numel() * p.element_size()
    return ParamCounts(totals["trainable"] + totals["frozen"], totals["trainable"], totals["frozen"],
                       totals["trainable_bytes"], totals["frozen_bytes"], by_module)


def count_parameters(preset_or_cfg: str | ModelConfig, meta: DatasetMeta) -> dict[str, dict[str, int]]:
    """{part: {"trainable": n, "frozen": n}} per top-level module (vision, language, fusion, ...) plus "total"."""
    from atlas.models.registry import build_policy

    cfg = ModelConfig(preset=preset_or_cfg) if isinstance(preset_or_cfg, str) else preset_or_cfg
    counts = count_params(build_policy(cfg, meta, Normalizer({}), device="meta"))
    out = {part: dict(value) for part, value in counts.by_module.items()}
    out["total"] = {"trainable": counts.trainable, "frozen": counts.frozen}
    return out
