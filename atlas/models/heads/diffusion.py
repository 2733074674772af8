"""`diffusion`: DDPM training (100-1000 steps) with DDIM sampling in a few deterministic steps (eta=0),
predicting the noise (`epsilon`, Diffusion Policy) or the clean sample (`sample`, RDT). The schedule is
derived from the config, so it is kept out of the state_dict."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from atlas.models.heads.base import ActionHead, Runner


def make_betas(schedule: str, steps: int) -> torch.Tensor:
    if schedule == "linear":
        scale = 1000.0 / steps
        return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64)

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)], dtype=torch.float64)


@dataclass(frozen=True)
class DiffusionSchedule:
    """The DDPM/DDIM settings of a diffusion head (model.head.*)."""

    num_train_timesteps: int = 100
    num_inference_steps: int = 10
    beta_schedule: str = "squaredcos_cap_v2"
    prediction: str = "epsilon"
    clip_sample: float | None = None


class DiffusionHead(ActionHead):
    def __init__(self, action_dim: int, horizon: int, width: int, schedule: DiffusionSchedule | None = None,
                 **denoiser) -> None:
        super().__init__(action_dim, horizon, width, **denoiser)
        schedule = schedule or DiffusionSchedule()
        self.num_train_timesteps = schedule.num_train_timesteps
        self.num_inference_steps = min(schedule.num_inference_steps, schedule.num_train_timesteps)
        self.prediction = schedule.prediction
        self.clip_sample = schedule.clip_sample
        alphas_cumprod = torch.cumprod(1 - make_betas(schedule.beta_schedule, schedule.num_train_timesteps), dim=0).float()
        self.register_buffer("alphas_cumprod", alphas_cumprod, persistent=False)

    def loss(self, actions: torch.Tensor, run: Runner) -> torch.Tensor:
        predict = self.predictor(run, actions.shape[0], self.noise_samples)
        actions = self.per_draw(actions)
        b = actions.shape[0]
        noise = torch.randn_like(actions)
        t = torch.randint(0, self.num_train_timesteps, (b,), device=actions.device)
        ac = self.alphas_cumprod[t].to(actions.dtype).view(b, 1, 1)
        noisy = ac.sqrt() * actions + (1 - ac).sqrt() * noise
        target = noise if self.prediction == "epsilon" else actions
        return self.per_observation((predict(noisy, t.float()) - target).pow(2))

    def sample(self, run: Runner, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        predict = self.predictor(run, batch_size)
        x = self.noise(batch_size, device, generator)
        stride = self.num_train_timesteps // self.num_inference_steps
        steps = list(range((self.num_inference_steps - 1) * stride, -1, -stride))  # diffusers' "leading" spacing
        for i, t in enumerate(steps):
            ac = self.alphas_cumprod[t]
            ac_prev = self.alphas_cumprod[steps[i + 1]] if i + 1 < len(steps) else torch.ones_like(ac)
            pred = predict(x, torch.full((batch_size,), t, device=device, dtype=torch.float32))
            if self.prediction == "epsilon":
                x0 = (x - (1 - ac).sqrt() * pred) / ac.sqrt()
            else:
                x0 = pred
            if self.clip_sample is not None:
                x0 = x0.clamp(-self.clip_sample, self.clip_sample)
            eps = (x - ac.sqrt() * x0) / (1 - ac).sqrt()
            x = ac_prev.sqrt() * x0 + (1 - ac_prev).sqrt() * eps
        return x
