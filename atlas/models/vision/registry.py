"""Vision backbones by `model.vision.name`; `none` builds nothing (state-only policies)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from atlas.config.errors import ConfigError
from atlas.models.vision.backbone import Backbone
from atlas.models.vision.config import VisionConfig
from atlas.registry import registrar

Builder = Callable[[VisionConfig, bool], Backbone]
BACKBONES: dict[str, Builder | None] = {"none": None}


register_backbone = registrar(BACKBONES)
# Backbones whose builder reads `model.vision.weights`; given to any other, the file would be ignored.
LOADS_WEIGHTS = {"vit", "vggt"}


@register_backbone("resnet_small")
def _resnet(cfg: VisionConfig, load_weights: bool) -> Backbone:
    from atlas.models.vision.resnet import ResNetSmall

    return ResNetSmall(cfg.width or 16, cfg.image_size, frozen=bool(cfg.freeze))


@register_backbone("vit")
def _vit(cfg: VisionConfig, load_weights: bool) -> Backbone:
    from atlas.models.vision.vit import ViT

    backbone = ViT(cfg.size or "small", cfg.width, cfg.depth, cfg.num_heads, cfg.patch_size, cfg.image_size, frozen=bool(cfg.freeze))
    if cfg.weights and load_weights:
        from atlas.models.vision.weights import load_backbone_weights

        load_backbone_weights(backbone, cfg.weights)
    return backbone


@register_backbone("vggt")
def _vggt(cfg: VisionConfig, load_weights: bool) -> Backbone:
    from atlas.models.vision.vggt import VGGTAggregator

    frozen = True if cfg.freeze is None else cfg.freeze
    weights = cfg.weights if load_weights else None
    return VGGTAggregator(cfg.size or "1b", cfg.width, cfg.depth, cfg.num_heads, cfg.patch_size, cfg.image_size, frozen, weights)


@register_backbone("hf")
def _hf(cfg: VisionConfig, load_weights: bool) -> Backbone:
    from atlas.models.vision.hf import HFVision

    frozen = True if cfg.freeze is None else cfg.freeze
    return HFVision(cfg.path, cfg.image_size, frozen, load_weights)


def build_backbone(cfg: VisionConfig, load_weights: bool = True) -> Backbone | None:
    if cfg.name not in BACKBONES:
        raise ConfigError(f"model.vision.name: unknown backbone {cfg.name!r}; valid: {', '.join(sorted(BACKBONES))}")
    if cfg.weights and cfg.name not in LOADS_WEIGHTS:
        raise ConfigError(f"model.vision.weights={cfg.weights!r}: the {cfg.name} backbone cannot load a weights file "
                          f"(backbones that can: {', '.join(sorted(LOADS_WEIGHTS))}); remove the key or change "
                          "model.vision.name")
    if cfg.weights and load_weights and not Path(cfg.weights).is_file():
        raise ConfigError(f"model.vision.weights: {cfg.weights} is not a file")
    builder = BACKBONES[cfg.name]
    return None if builder is None else builder(cfg, load_weights)
