"""Reduced-depth probing: a transformer's saved activations and FLOPs are affine in the number of its
identical blocks, so three small fake models stand in for the full one.

With F fusion blocks and V vision blocks, any measured quantity Q is Q(f, v) = c + a·f + b·v. Probing
(f0, v0), (f1, v0) and (f0, v1) gives a, b and c, and Q(F, V) follows. f steps by the fusion's period
(2 when cross-attention alternates language/vision, so both kinds of block are in every probe).
`tests/planning/test_probe_depth.py` checks the extrapolation against a full-depth probe.
"""

from __future__ import annotations

from dataclasses import dataclass

from atlas.config.schema import AtlasConfig

DEPTH_VISION = ("vit", "vggt")  # backbones whose `model.vision.depth` sets the number of identical blocks


@dataclass(frozen=True)
class DepthPoint:
    fusion: int | None  # None: the config's own depth
    vision: int | None


@dataclass(frozen=True)
class DepthPlan:
    """Which reduced depths to probe and how to combine their measurements into the full model's."""

    points: tuple[DepthPoint, ...]
    full_fusion: int
    full_vision: int

    def combine(self, values: list[float]) -> float:
        """Q at full depth from Q at `points` (one value per point, in order)."""
        if len(self.points) == 1:
            return values[0]
        base, *rest = self.points
        total = values[0]
        for point, value in zip(rest, values[1:]):
            if point.fusion != base.fusion:
                total += (self.full_fusion - base.fusion) / (point.fusion - base.fusion) * (value - values[0])
            else:
                total += (self.full_vision - base.vision) / (point.vision - base.vision) * (value - values[0])
        return total


def depth_plan(cfg: AtlasConfig) -> DepthPlan:
    """Small probes when the stacks are deep; the config itself when they are already shallow."""
    from atlas.models.vision.vggt import VGGT_SIZES
    from atlas.models.vision.vit import VIT_SIZES

    m = cfg.model
    fusion = getattr(m, "fusion", None)
    period = 2 if fusion is not None and fusion.cross_attention and fusion.alternate_cross_attention else 1
    full_f = fusion.depth if fusion is not None else 0
    full_v = 0
    vision = getattr(m, "vision", None)
    if vision is not None and vision.name in DEPTH_VISION:
        sizes = VIT_SIZES if vision.name == "vit" else {k: (0, v["depth"]) for k, v in VGGT_SIZES.items()}
        default = sizes.get(vision.size or ("small" if vision.name == "vit" else "1b"))
        full_v = vision.depth or (default[1] if default else 0)
    if m.preset == "mlp" or full_f < 3 * period or (full_v and full_v < 3):
        return DepthPlan((DepthPoint(None, None),), full_f, full_v)
    f0, f1 = period, 2 * period
    points = [DepthPoint(f0, 1 if full_v else None), DepthPoint(f1, 1 if full_v else None)]
    if full_v:
        points.append(DepthPoint(f0, 2))
    return DepthPlan(tuple(points), full_f, full_v)


def at_depth(cfg: AtlasConfig, point: DepthPoint) -> AtlasConfig:
    """The config with the fusion / vision depth replaced (validation is not rerun: only depths change)."""
    m = cfg.model
    update = {}
    if point.fusion is not None:
        update["fusion"] = m.fusion.model_copy(update={"depth": point.fusion})
    if point.vision is not None:
        update["vision"] = m.vision.model_copy(update={"depth": point.vision})
    return cfg.model_copy(update={"model": m.model_copy(update=update)}) if update else cfg
