"""Config of the action head: the `model.head:` block."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from atlas.config.base import Section


class HeadConfig(Section):
    name: str = Field("flow", description="Action head registry key: flow, diffusion, l1.")
    num_inference_steps: int = Field(10, gt=0, description="flow: Euler steps; diffusion: DDIM steps at inference.")
    num_train_timesteps: int = Field(100, ge=2, le=1000, description="diffusion: DDPM training timesteps (100-1000).")
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = Field(
        "squaredcos_cap_v2", description="diffusion: noise schedule (RDT: squaredcos_cap_v2)."
    )
    prediction: Literal["epsilon", "sample"] = Field(
        "epsilon", description="diffusion: the network predicts the noise (epsilon) or the clean actions (sample, RDT)."
    )
    clip_sample: float | None = Field(
        None, gt=0, description="diffusion: clamp predicted clean actions to [-c, c] while sampling (None: no clamp)."
    )
    denoiser: Literal["transformer", "mlp"] = Field(
        "transformer",
        description="flow/diffusion: transformer: noisy action tokens go through the fusion transformer at every "
        "denoising step (pi0, RDT); mlp: the transformer runs once per observation into a readout token and a small "
        "residual MLP denoises from it (Octo): a cheaper step, most of all on short token sequences "
        "(benchmarks/denoiser.py, figures in benchmarks/RESULTS.md).",
    )
    mlp_width: int = Field(256, gt=0, description="denoiser=mlp: hidden width of the denoising MLP.")
    mlp_depth: int = Field(3, ge=1, description="denoiser=mlp: residual blocks of the denoising MLP.")
    noise_samples: int = Field(
        1, ge=1, description="(noise, time) draws per observation per step; > 1 only with denoiser=mlp, where a draw "
        "costs the MLP alone.",
    )
