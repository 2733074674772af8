"""RDT's runner (models/rdt_runner.py): the denoiser plus its three condition adaptors, under the
module names of RDT's state dict (`model.*`, `lang_adaptor.*`, `img_adaptor.*`, `state_adaptor.*`),
and the two things it does: predict the clean chunk from noisy actions at a diffusion step (training),
and sample a chunk from noise with DPM-Solver++ (inference).

Everything lives in the unified space of `state_token_dim` entries (128 for RDT-1B): a state or an
action token is the padded vector with its 0/1 indicator of real entries appended, so the state
adaptor reads 2 x 128 features. `RDTRunnerMixin` serves both the plain runner (`RDTRunner`, what the
replay command loads a release into) and the Atlas policy, which holds the same modules at top level.
"""

from __future__ import annotations

import torch
from torch import nn

from atlas.models.layers import mlp_adaptor
from atlas.models.rdt.scheduler import NoiseSchedule
from atlas.models.rdt.shape import RDTShape, adaptor_layers
from atlas.models.rdt.transformer import RDTTransformer

RELEASE_MODULES = ("model", "lang_adaptor", "img_adaptor", "state_adaptor")


class RDTRunnerMixin:
    """Adds RDT's modules to an nn.Module (call `build_rdt` after nn.Module.__init__)."""

    model: RDTTransformer
    lang_adaptor: nn.Module
    img_adaptor: nn.Module
    state_adaptor: nn.Module

    def build_rdt(self, shape: RDTShape) -> None:
        hidden = shape.hidden_size
        self.rdt_shape = shape
        self.model = RDTTransformer(shape)
        self.lang_adaptor = mlp_adaptor(shape.lang_token_dim, hidden, adaptor_layers(shape.lang_adaptor))
        self.img_adaptor = mlp_adaptor(shape.img_token_dim, hidden, adaptor_layers(shape.img_adaptor))
        self.state_adaptor = mlp_adaptor(2 * shape.state_token_dim, hidden, adaptor_layers(shape.state_adaptor))
        self.noise_schedule = NoiseSchedule(shape.beta_schedule, shape.num_train_timesteps, shape.prediction_type)

    def _tokens(self, values: torch.Tensor, indicator: torch.Tensor) -> torch.Tensor:
        """[B, L, D] values and [B, 1 or L, D] 0/1 indicator → adapted tokens [B, L, hidden]."""
        indicator = indicator.to(values.dtype).expand(-1, values.shape[1], -1)
        return self.state_adaptor(torch.cat([values, indicator], dim=-1))

    def denoise(self, conditions: dict[str, torch.Tensor], noisy_action: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
        """The network's prediction [B, H, D] for noisy actions at diffusion steps `timesteps` ([B] or [1]).

        conditions (from `condition`): `lang` [B, L, W], `lang_mask` [B, L] bool, `img` [B, Li, W],
        `state` [B, 1, W] (adapted), `action_mask` [B, 1, D] float 0/1, `ctrl_freqs` [B]."""
        actions = self._tokens(noisy_action, conditions["action_mask"])
        x = torch.cat([conditions["state"], actions], dim=1)
        return self.model(x, conditions["ctrl_freqs"], timesteps, conditions["lang"], conditions["img"],
                          lang_mask=conditions["lang_mask"])

    def condition(self, lang_tokens: torch.Tensor, lang_mask: torch.Tensor | None, img_tokens: torch.Tensor,
                  state_tokens: torch.Tensor, action_mask: torch.Tensor, ctrl_freqs: torch.Tensor,
                  state_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Adapt the raw condition tokens once per observation (RDT's `adapt_conditions`); the state's
        indicator is `state_mask`, RDT's own use being the action mask for both."""
        return {
            "lang": self.lang_adaptor(lang_tokens),
            "lang_mask": None if lang_mask is None else lang_mask.bool(),
            "img": self.img_adaptor(img_tokens),
            "state": self._tokens(state_tokens, action_mask if state_mask is None else state_mask),
            "action_mask": action_mask,
            "ctrl_freqs": ctrl_freqs,
        }

    def sample_chunk(self, conditions: dict[str, torch.Tensor], noise: torch.Tensor,
                     num_steps: int | None = None) -> torch.Tensor:
        """RDT's `conditional_sample`: DPM-Solver++ from `noise` [B, H, D], then times the action mask."""
        steps = num_steps or self.rdt_shape.num_inference_timesteps
        actions = self.noise_schedule.sample(lambda x, t: self.denoise(conditions, x, t), noise, steps)
        return actions * conditions["action_mask"].to(actions.dtype)

    def diffusion_loss(self, conditions: dict[str, torch.Tensor], actions: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-element squared error [B, H, D] of RDT's DDPM objective (random step and noise per sample)."""
        b = actions.shape[0]
        noise = torch.randn(actions.shape, device=actions.device, dtype=actions.dtype, generator=generator)
        t = torch.randint(0, self.noise_schedule.train_steps, (b,), device=actions.device, generator=generator)
        noisy = self.noise_schedule.add_noise(actions, noise, t)
        pred = self.denoise(conditions, noisy, t)
        return (pred.float() - self.noise_schedule.target(actions, noise).float()).pow(2)


class RDTRunner(nn.Module, RDTRunnerMixin):
    """Just RDT's network (no encoders): what a release's weights load into for replay."""

    def __init__(self, shape: RDTShape) -> None:
        super().__init__()
        self.build_rdt(shape)
