"""AtlasPolicy: vision backbone + language encoder + fusion transformer + action head.

Tokens per sample: [language (1), vision (T*N*L), state (T), time/noise (1), actions (H)]. The
condition (language, vision) is computed once per batch; the head then calls the fusion transformer as
often as its sampler needs. Top-level module names are the `training.lr_multipliers` prefixes:
`vision.`, `language.`, `fusion.`, `action_head.`, plus the trainable adaptors `vision_proj.`,
`language_proj.`, `state_proj.` (kept apart so a frozen backbone's multiplier of 0 leaves them training).
"""

from __future__ import annotations

import torch
from torch import nn

from atlas.config.errors import ConfigError
from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.base import Policy, masked_loss
from atlas.models.config import ModelConfig
from atlas.models.fusion.transformer import FusionTransformer
from atlas.models.heads.base import Runner
from atlas.models.heads.registry import build_head
from atlas.models.language.registry import build_encoder
from atlas.models.layers import mlp_adaptor, set_memory_efficient_attention, sinusoidal
from atlas.models.lora import apply_lora
from atlas.models.presets import PRESETS, RDT_PRESETS
from atlas.models.registry import register_policy
from atlas.models.vision.registry import build_backbone
from atlas.models.vision.tokens import VisionProjector


class AtlasPolicy(Policy):
    accepts_memory_options = True

    def __init__(
        self,
        cfg: ModelConfig,
        meta: DatasetMeta,
        normalizer: Normalizer,
        gradient_checkpointing: bool = False,
        memory_efficient_attention: bool = False,
        load_weights: bool = True,
    ) -> None:
        super().__init__(cfg, meta, normalizer)
        width, layers = cfg.fusion.width, cfg.fusion.adaptor_layers
        self.unified_dim = cfg.unified_dim
        if self.unified_dim is not None and self.unified_dim < max(meta.state_dim, meta.action_dim):
            raise ConfigError(
                f"model.unified_dim={self.unified_dim} is smaller than the data's state ({meta.state_dim}) "
                f"or action ({meta.action_dim}) size"
            )
        self.num_cameras = len(meta.cameras)
        self.vision = build_backbone(cfg.vision, load_weights) if self.num_cameras else None
        if self.vision is not None:
            self.vision_proj = VisionProjector(self.vision.out_dim, width, self.num_cameras, cfg.vision.pool_grid, layers)
        self.language = build_encoder(cfg.language, meta, load_weights)
        if self.language is not None:
            self.language_proj = mlp_adaptor(self.language.out_dim, width, layers)
        state_in = 2 * self.unified_dim if self.unified_dim else meta.state_dim
        self.state_proj = mlp_adaptor(state_in, width, layers)
        self.fusion = FusionTransformer(cfg.fusion, cfg.dropout)
        self.action_head = build_head(cfg.head, self.unified_dim or meta.action_dim, cfg.action_horizon, width)
        self.set_gradient_checkpointing(gradient_checkpointing)
        set_memory_efficient_attention(self, memory_efficient_attention)
        apply_lora(self, cfg.lora)  # model.lora: adapters on the targeted linears, base weights frozen

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self.fusion.gradient_checkpointing = enabled
        if self.vision is not None:
            self.vision.gradient_checkpointing = enabled

    # -- tokens -----------------------------------------------------------------------------------
    def _pad(self, x: torch.Tensor, with_mask: bool, real: torch.Tensor | None = None) -> torch.Tensor:
        """Into the unified space (RDT): zero-pad, and for states append which entries are real (`real` [B, D]:
        a mixture's per-sample mask of its own entries; None: all of x's)."""
        if self.unified_dim is None:
            return x
        padded = nn.functional.pad(x, (0, self.unified_dim - x.shape[-1]))
        if not with_mask:
            return padded
        if real is None:
            mask = torch.zeros(self.unified_dim, dtype=x.dtype, device=x.device)
            mask[: x.shape[-1]] = 1
            return torch.cat([padded, mask.expand_as(padded)], dim=-1)
        mask = nn.functional.pad(real.to(x.dtype), (0, self.unified_dim - real.shape[-1]))
        return torch.cat([padded, mask.unsqueeze(1).expand_as(padded)], dim=-1)

    def _condition(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition tokens [B, Lc, W] (language, vision) and state tokens [B, T, W]."""
        state = batch["state"]
        b, steps = state.shape[:2]
        parts = []
        if self.language is not None:
            lang = self.language(list(batch["instruction"]), batch.get("task_index"))
            parts.append(self.language_proj(lang.to(state.dtype)).unsqueeze(1))
        if self.vision is not None:
            if "images" not in batch:
                raise ValueError("the policy has a vision backbone but the batch has no `images`")
            images = batch["images"]
            tokens, grid = self.vision(images.flatten(1, 2))
            parts.append(self.vision_proj(tokens.to(state.dtype), grid, images.shape[2]))
        state_tokens = self.state_proj(self._pad(state, with_mask=True, real=batch.get("state_dim_mask")))
        state_tokens = state_tokens + sinusoidal(torch.arange(steps, device=state.device), state_tokens.shape[-1]).to(state.dtype)
        condition = torch.cat(parts, dim=1) if parts else state_tokens.new_zeros(b, 0, state_tokens.shape[-1])
        return condition, state_tokens

    def _runner(self, batch: dict) -> Runner:
        condition, state_tokens = self._condition(batch)

        def run(head_tokens: torch.Tensor) -> torch.Tensor:
            return self.fusion(condition, torch.cat([state_tokens, head_tokens], dim=1))

        return run

    # -- the Policy interface ---------------------------------------------------------------------
    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        actions = batch["action"]
        per_element = self.action_head.loss(self._pad(actions, with_mask=False), self._runner(batch))
        out = masked_loss(per_element[..., : actions.shape[-1]], batch["action_mask"], batch.get("action_dim_mask"))
        out[f"{self.cfg.head.name}_loss"] = out["loss"]
        return out

    def sample_actions(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        state = batch["state"]
        actions = self.action_head.sample(self._runner(batch), state.shape[0], state.device, generator)
        return actions[..., : self.meta.action_dim]


for _name in PRESETS:
    if _name != "mlp" and _name not in RDT_PRESETS:  # RDT's presets: atlas.models.rdt.policy
        register_policy(_name)(AtlasPolicy)
