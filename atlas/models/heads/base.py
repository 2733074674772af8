"""What the action heads share: the tokens they feed the fusion transformer and how they read it out.

A head never sees the observation: it gets `run(head_tokens) -> hidden of the action tokens`, a closure
over the (once-computed) condition tokens, so a sampler can call the transformer many times per chunk.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from atlas.config.errors import ConfigError
from atlas.models.heads.readout import Predictor, ReadoutDenoiser
from atlas.models.layers import sinusoidal

Runner = Callable[[torch.Tensor], torch.Tensor]
TIME_FEATURES = 256
DENOISERS = ("transformer", "mlp")


class ActionHead(nn.Module):
    """Noisy actions [B, H, A] + a time token → fusion → per-step outputs [B, H, A] (the `transformer`
    denoiser), or the fusion once into a readout and a small MLP per denoising step (`mlp`, readout.py)."""

    uses_time = True
    uses_noisy_actions = True  # False for heads that regress from queries alone (no unused input layer)

    def __init__(
        self,
        action_dim: int,
        horizon: int,
        width: int,
        denoiser: str = "transformer",
        mlp_width: int = 256,
        mlp_depth: int = 3,
        noise_samples: int = 1,
    ) -> None:
        super().__init__()
        if denoiser not in DENOISERS:
            raise ConfigError(f"model.head.denoiser: {denoiser!r} is not one of {', '.join(DENOISERS)}")
        if noise_samples > 1 and denoiser != "mlp":
            raise ConfigError(
                f"model.head.noise_samples={noise_samples} needs model.head.denoiser=mlp: with the transformer "
                "denoiser each draw costs a whole transformer pass, the same as a larger batch"
            )
        self.action_dim = action_dim
        self.horizon = horizon
        self.noise_samples = noise_samples
        self.readout = ReadoutDenoiser(action_dim, horizon, width, mlp_width, mlp_depth) if denoiser == "mlp" else None
        if self.readout is not None:  # the transformer only sees the readout query: no token layers to leave unused
            return
        if self.uses_noisy_actions:  # an unused layer would break DDP (find_unused_parameters=False)
            self.action_in = nn.Linear(action_dim, width)
        self.pos_embed = nn.Parameter(torch.randn(1, horizon, width) * 0.02)
        if self.uses_time:
            self.time_mlp = nn.Sequential(nn.Linear(TIME_FEATURES, width), nn.SiLU(), nn.Linear(width, width))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, action_dim)

    def tokens(self, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """[B, 1+H, W]: the time token (t in model units, e.g. 0..999) then one token per chunk step."""
        time = self.time_mlp(sinusoidal(t, TIME_FEATURES).to(noisy.dtype)).unsqueeze(1)
        return torch.cat([time, self.action_in(noisy) + self.pos_embed], dim=1)

    def decode(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(self.out_norm(hidden[:, -self.horizon :]))

    def predictor(self, run: Runner, batch_size: int, repeats: int = 1) -> Predictor:
        """(x [repeats*B, H, A], t [repeats*B] in model units) → the network's prediction [repeats*B, H, A]."""
        if self.readout is not None:
            return self.readout.bind(run, batch_size, repeats)
        if repeats != 1:
            raise ValueError("several noise draws per observation need the mlp denoiser")
        return lambda x, t: self.decode(run(self.tokens(x, t)))

    def per_draw(self, actions: torch.Tensor) -> torch.Tensor:
        """[B, H, A] targets → [noise_samples*B, H, A], in the row order `predictor(..., repeats)` expects."""
        return actions.repeat(self.noise_samples, 1, 1) if self.noise_samples > 1 else actions

    def per_observation(self, per_element: torch.Tensor) -> torch.Tensor:
        """[noise_samples*B, H, A] losses → [B, H, A]: the mean over each observation's draws."""
        k = self.noise_samples
        return per_element if k == 1 else per_element.view(k, -1, *per_element.shape[1:]).mean(0)

    def loss(self, actions: torch.Tensor, run: Runner) -> torch.Tensor:
        """Per-element loss [B, H, A] for normalized target actions (the policy applies the pad mask)."""
        raise NotImplementedError

    def sample(self, run: Runner, batch_size: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def noise(self, batch_size: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(batch_size, self.horizon, self.action_dim, device=device, generator=generator)
