"""`flow`: conditional flow matching (rectified flow, as in pi0): learn the velocity from noise to
actions along straight paths; sample with a few Euler steps. Multimodal because each noise draw flows
to one mode instead of the average."""

from __future__ import annotations

import torch

from atlas.models.heads.base import ActionHead, Runner

TIME_SCALE = 1000.0  # t in [0, 1] → the time embedding's 0..1000 range


class FlowHead(ActionHead):
    def __init__(self, action_dim: int, horizon: int, width: int, num_inference_steps: int = 10, **denoiser) -> None:
        super().__init__(action_dim, horizon, width, **denoiser)
        self.num_inference_steps = num_inference_steps

    def loss(self, actions: torch.Tensor, run: Runner) -> torch.Tensor:
        velocity = self.predictor(run, actions.shape[0], self.noise_samples)
        actions = self.per_draw(actions)
        b = actions.shape[0]
        noise = torch.randn_like(actions)
        t = torch.rand(b, device=actions.device, dtype=actions.dtype)
        x_t = t.view(b, 1, 1) * actions + (1 - t.view(b, 1, 1)) * noise
        return self.per_observation((velocity(x_t, t * TIME_SCALE) - (actions - noise)).pow(2))

    def sample(self, run: Runner, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        velocity = self.predictor(run, batch_size)
        x = self.noise(batch_size, device, generator)
        dt = 1.0 / self.num_inference_steps
        for i in range(self.num_inference_steps):
            t = torch.full((batch_size,), i * dt * TIME_SCALE, device=device)
            x = x + dt * velocity(x, t)
        return x
