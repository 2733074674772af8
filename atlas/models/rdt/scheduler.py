"""RDT's noise schedules, written for Atlas: DDPM training noise (diffusers' `DDPMScheduler.add_noise`)
and the DPM-Solver++ multistep sampler with the defaults of diffusers' `DPMSolverMultistepScheduler`
that RDT samples with (`rdt_runner.py`: only the train steps, beta schedule and prediction type set):
second order, midpoint, `linspace` timestep spacing, lower-order final steps (< 15 steps), final sigma
0, no thresholding, `lambda_min_clipped=-inf`, deterministic (no SDE noise).

The arithmetic follows diffusers' dtypes: betas and cumulative alphas in float32, the timestep sigmas
through float64 interpolation stored as float32, and the update itself in float32, so the sampled
actions agree with RDT's to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

def betas(schedule: str, steps: int) -> torch.Tensor:
    """[steps] float32, as diffusers builds them (squaredcos_cap_v2 = `betas_for_alpha_bar`, max 0.999)."""
    if schedule == "linear":
        return torch.linspace(1e-4, 0.02, steps, dtype=torch.float32)
    if schedule == "scaled_linear":
        return torch.linspace(1e-4**0.5, 0.02**0.5, steps, dtype=torch.float32) ** 2

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)],
                        dtype=torch.float32)


class NoiseSchedule:
    """What training and sampling share: the cumulative alphas of the training schedule."""

    def __init__(self, schedule: str = "squaredcos_cap_v2", train_steps: int = 1000, prediction: str = "sample") -> None:
        self.train_steps = train_steps
        self.prediction = prediction
        self.alphas_cumprod = torch.cumprod(1.0 - betas(schedule, train_steps), dim=0)

    # -- training (DDPM) --------------------------------------------------------------------------
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ac = self.alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[t.long()]
        ac = ac.view(-1, *([1] * (x0.dim() - 1)))
        return ac.sqrt() * x0 + (1 - ac).sqrt() * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x0 if self.prediction == "sample" else noise

    # -- sampling (DPM-Solver++ 2M) ---------------------------------------------------------------
    def timesteps(self, num_steps: int) -> list[int]:
        """diffusers' `linspace` spacing: round(linspace(0, T-1, n+1)) reversed, the 0 dropped."""
        grid = torch.linspace(0, self.train_steps - 1, num_steps + 1, dtype=torch.float64).round()
        return [int(v) for v in grid.flip(0)[:-1]]

    def sigmas(self, timesteps: list[int]) -> torch.Tensor:
        """[n + 1] float32 sqrt((1 - a) / a) at the timesteps, then the final sigma 0."""
        ac = self.alphas_cumprod
        sigma = ((1 - ac) / ac) ** 0.5
        picked = sigma.to(torch.float64)[torch.tensor(timesteps)]
        return torch.cat([picked, torch.zeros(1, dtype=torch.float64)]).float()

    def sample(self, predict: Predict, x: torch.Tensor, num_steps: int) -> torch.Tensor:
        """From initial noise x [B, ...]: `predict(x, t)` (t an int64 tensor [1]) is the network's output."""
        steps = self.timesteps(num_steps)
        sigmas = self.sigmas(steps)
        previous: torch.Tensor | None = None
        for i, t in enumerate(steps):
            output = predict(x, torch.tensor([t], dtype=torch.long, device=x.device))
            x0 = self.data_prediction(output, x, sigmas[i])
            # first order on the first step (no history) and on the last (diffusers: a final sigma of 0 forces it)
            first_order = previous is None or i == len(steps) - 1
            x = self._update(x.float(), x0.float(), None if first_order else previous.float(), sigmas, i)
            x = x.to(output.dtype)
            previous = x0
        return x

    def data_prediction(self, output: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """DPM-Solver++ integrates the data prediction: the output itself (`sample`) or x0 from epsilon."""
        if self.prediction == "sample":
            return output
        alpha_t, sigma_t = _alpha_sigma(sigma)
        return (x - sigma_t.to(x.dtype) * output) / alpha_t.to(x.dtype)

    @staticmethod
    def _update(x: torch.Tensor, d0: torch.Tensor, d_prev: torch.Tensor | None, sigmas: torch.Tensor,
                i: int) -> torch.Tensor:
        """x_t from x_s: first order (DDIM) or the second-order midpoint multistep update."""
        alpha_t, sigma_t = _alpha_sigma(sigmas[i + 1])
        alpha_s0, sigma_s0 = _alpha_sigma(sigmas[i])
        if d_prev is None and float(sigma_t) == 0.0:  # lambda_t = inf, exp(-h) = 0: x_t is the data prediction
            return alpha_t * d0
        lambda_t, lambda_s0 = _lambda(alpha_t, sigma_t), _lambda(alpha_s0, sigma_s0)
        h = lambda_t - lambda_s0
        decay = torch.exp(-h) - 1.0
        out = (sigma_t / sigma_s0) * x - (alpha_t * decay) * d0
        if d_prev is None:
            return out
        alpha_s1, sigma_s1 = _alpha_sigma(sigmas[i - 1])
        r0 = (lambda_s0 - _lambda(alpha_s1, sigma_s1)) / h
        d1 = (1.0 / r0) * (d0 - d_prev)
        return out - 0.5 * (alpha_t * decay) * d1


def _alpha_sigma(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    alpha = 1 / ((sigma**2 + 1) ** 0.5)
    return alpha, sigma * alpha


def _lambda(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return torch.log(alpha) - torch.log(sigma)
