"""Action heads by `model.head.name`."""

from __future__ import annotations

from collections.abc import Callable

from atlas.config.errors import ConfigError
from atlas.models.heads.base import ActionHead
from atlas.models.heads.config import HeadConfig
from atlas.registry import registrar

Builder = Callable[[HeadConfig, int, int, int], ActionHead]
HEADS: dict[str, Builder] = {}


register_head = registrar(HEADS)


def denoiser_options(cfg: HeadConfig) -> dict:
    """The generative heads' shared choice of denoiser (base.ActionHead)."""
    return {"denoiser": cfg.denoiser, "mlp_width": cfg.mlp_width, "mlp_depth": cfg.mlp_depth,
            "noise_samples": cfg.noise_samples}


@register_head("flow")
def _flow(cfg: HeadConfig, action_dim: int, horizon: int, width: int) -> ActionHead:
    from atlas.models.heads.flow import FlowHead

    return FlowHead(action_dim, horizon, width, cfg.num_inference_steps, **denoiser_options(cfg))


@register_head("diffusion")
def _diffusion(cfg: HeadConfig, action_dim: int, horizon: int, width: int) -> ActionHead:
    from atlas.models.heads.diffusion import DiffusionHead, DiffusionSchedule

    schedule = DiffusionSchedule(cfg.num_train_timesteps, cfg.num_inference_steps, cfg.beta_schedule, cfg.prediction,
                                 cfg.clip_sample)
    return DiffusionHead(action_dim, horizon, width, schedule, **denoiser_options(cfg))


@register_head("l1")
def _l1(cfg: HeadConfig, action_dim: int, horizon: int, width: int) -> ActionHead:
    from atlas.models.heads.l1 import L1Head

    if cfg.denoiser != "transformer" or cfg.noise_samples != 1:
        raise ConfigError("model.head.name=l1 regresses in one transformer pass: model.head.denoiser and noise_samples "
                         "apply to the flow and diffusion heads only")
    return L1Head(action_dim, horizon, width)


def build_head(cfg: HeadConfig, action_dim: int, horizon: int, width: int) -> ActionHead:
    if cfg.name not in HEADS:
        raise ConfigError(f"model.head.name: unknown head {cfg.name!r}; valid: {', '.join(sorted(HEADS))}")
    return HEADS[cfg.name](cfg, action_dim, horizon, width)
