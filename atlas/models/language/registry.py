"""Instruction encoders by `model.language.name`: list[str] (+ task_index) → [B, out_dim]."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from atlas.data.episodes import DatasetMeta
from atlas.models.language.config import LanguageConfig
from atlas.registry import registrar

Builder = Callable[[LanguageConfig, DatasetMeta, bool], nn.Module]
ENCODERS: dict[str, Builder | None] = {"none": None}


register_encoder = registrar(ENCODERS)


@register_encoder("task_embedding")
def _task(cfg: LanguageConfig, meta: DatasetMeta, load_weights: bool) -> nn.Module:
    from atlas.models.language.task import TaskEmbedding

    return TaskEmbedding(meta.tasks, meta.instructions, cfg.dim)


@register_encoder("minilm")
def _minilm(cfg: LanguageConfig, meta: DatasetMeta, load_weights: bool) -> nn.Module:
    from atlas.models.language.text import TextEncoder, minilm_path

    path = minilm_path(required=load_weights)  # shapes only (planning): no package needed
    return TextEncoder(path, cfg.freeze, cfg.max_length, normalize=True, load_weights=load_weights)


@register_encoder("hf")
def _hf(cfg: LanguageConfig, meta: DatasetMeta, load_weights: bool) -> nn.Module:
    from atlas.models.language.text import TextEncoder

    if not cfg.path:
        raise ValueError("model.language.path: the hf encoder needs a local folder of a transformers model")
    return TextEncoder(cfg.path, cfg.freeze, cfg.max_length, normalize=False, load_weights=load_weights)


def build_encoder(cfg: LanguageConfig, meta: DatasetMeta, load_weights: bool = True) -> nn.Module | None:
    if cfg.name not in ENCODERS:
        raise ValueError(f"model.language.name: unknown encoder {cfg.name!r}; valid: {', '.join(sorted(ENCODERS))}")
    builder = ENCODERS[cfg.name]
    return None if builder is None else builder(cfg, meta, load_weights)
