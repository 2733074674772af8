"""The `rdt` policy (presets `rdt-1b`, `rdt`): RDT's network trained and sampled through Atlas's loop.

Modules (and `training.lr_multipliers` prefixes): `vision.` (the image encoder: SigLIP from a local
folder via `model.vision.name: hf`, or Atlas's so400m ViT stand-in), `language.` (per-token
instruction encoder, atlas/models/language/tokens.py), and RDT's own `model.`, `lang_adaptor.`,
`img_adaptor.`, `state_adaptor.` under the names of RDT's state dict, so a release loads as it is.

The unified space (`model.unified_dim`, RDT-1B: 128): Atlas places the data's state in entries
[0, state_dim) and its action in [0, action_dim) (a contiguous placement, not RDT's configs/state_vec.py
layout of named joints); the rest is zero. Each token carries its 0/1 indicator of real entries: the state
token the state's, the action tokens the action's (RDT uses one mask for both because its states and
actions share the layout; with state_dim == action_dim the two are the same). RDT's loss is the mean
over all 128 entries; Atlas's is over the real action entries of the unpadded steps (`masked_loss`),
and sampled chunks are cut back to the data's action size.

Inputs per observation, as RDT's: the last state (RDT conditions on one state), the last
`model.rdt.img_history_size` frames of every camera slot in (frame, camera, patch) order, the
instruction's tokens with their mask, and the control frequency (`model.rdt.control_frequency`, or a
batch's `ctrl_freq`). Without cameras in the data the image condition is one constant (zero) token.
"""

from __future__ import annotations

import torch
from torch import nn

from atlas.config.errors import ConfigError
from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.base import Policy, masked_loss
from atlas.models.config import ModelConfig
from atlas.models.language.tokens import build_token_encoder
from atlas.models.layers import set_memory_efficient_attention
from atlas.models.presets import RDT_PRESETS
from atlas.models.rdt.runner import RDTRunnerMixin
from atlas.models.rdt.shape import RDTShape, image_pos_config, lang_pos_config
from atlas.models.registry import register_policy
from atlas.models.vision.registry import build_backbone

BACKGROUND = 0.5  # RDT fills absent cameras with the image processor's mean colour (SigLIP: 0.5 grey)


def tokens_per_image(backbone: nn.Module, image_size: tuple[int, int] | None) -> int:
    """Patch tokens one frame gives: from the backbone's patch size, else one (shape-only) forward pass."""
    size = getattr(backbone, "image_size", None)
    h, w = (size, size) if size else (image_size or (224, 224))
    patch = getattr(backbone, "patch_size", None)
    if patch is None and hasattr(backbone, "patch_embed"):
        patch = backbone.patch_embed.kernel_size[0]
    if patch:
        return (h // patch) * (w // patch)
    param = next(backbone.parameters())
    with torch.no_grad():
        tokens, _ = backbone.encode(torch.zeros(1, 1, 3, h, w, device=param.device, dtype=param.dtype))
    return int(tokens.shape[2])


class RDTPolicy(Policy, RDTRunnerMixin):
    accepts_memory_options = True

    def __init__(self, cfg: ModelConfig, meta: DatasetMeta, normalizer: Normalizer, gradient_checkpointing: bool = False,
                 memory_efficient_attention: bool = False, load_weights: bool = True) -> None:
        super().__init__(cfg, meta, normalizer)
        r = cfg.rdt
        self.unified_dim = cfg.unified_dim or max(meta.state_dim, meta.action_dim)
        if self.unified_dim < max(meta.state_dim, meta.action_dim):
            raise ConfigError(f"model.unified_dim={self.unified_dim} is smaller than the data's state "
                              f"({meta.state_dim}) or action ({meta.action_dim}) size")
        if cfg.head.name != "diffusion":
            raise ConfigError(f"model.head.name={cfg.head.name!r}: the rdt policy is RDT's diffusion model (diffusion)")
        self.history = r.img_history_size
        self.num_cameras = (r.num_cameras or len(meta.cameras)) if meta.cameras else 0
        if self.num_cameras and len(meta.cameras) > self.num_cameras:
            raise ConfigError(f"model.rdt.num_cameras={self.num_cameras} but the data has {len(meta.cameras)} "
                              f"cameras ({', '.join(meta.cameras)})")
        self.language = build_token_encoder(cfg.language, meta, load_weights, r.max_lang_cond_len)
        self.vision = build_backbone(cfg.vision, load_weights) if self.num_cameras else None
        if self.num_cameras and self.vision is None:
            raise ConfigError("the data has cameras: the rdt policy needs a model.vision backbone (e.g. hf + SigLIP)")
        lang_dim = self._checked("lang_token_dim", r.lang_token_dim, self.language.out_dim, "model.language")
        if self.vision is not None:
            patches = tokens_per_image(self.vision, meta.image_size)
            img_dim = self._checked("img_token_dim", r.img_token_dim, self.vision.out_dim, "model.vision")
            img_len, img_pos = self.history * self.num_cameras * patches, image_pos_config(
                self.history, self.num_cameras, patches)
        else:
            img_dim, img_len, img_pos = r.img_token_dim or 1, 1, None
        head = cfg.head
        self.build_rdt(RDTShape(
            action_dim=self.unified_dim, pred_horizon=cfg.action_horizon, hidden_size=cfg.fusion.width,
            depth=cfg.fusion.depth, num_heads=cfg.fusion.num_heads, lang_token_dim=lang_dim, img_token_dim=img_dim,
            state_token_dim=self.unified_dim, max_lang_cond_len=r.max_lang_cond_len, img_cond_len=img_len,
            lang_adaptor=r.lang_adaptor, img_adaptor=r.img_adaptor, state_adaptor=r.state_adaptor,
            lang_pos_embed_config=lang_pos_config(r.max_lang_cond_len), img_pos_embed_config=img_pos,
            num_train_timesteps=head.num_train_timesteps, num_inference_timesteps=head.num_inference_steps,
            beta_schedule=head.beta_schedule, prediction_type=head.prediction,
        ))
        self.set_gradient_checkpointing(gradient_checkpointing)
        set_memory_efficient_attention(self, memory_efficient_attention)

    @staticmethod
    def _checked(name: str, expected: int | None, got: int, part: str) -> int:
        if expected is not None and expected != got:
            raise ConfigError(f"model.rdt.{name}={expected} (e.g. from the release's config.json) but {part} gives "
                              f"{got}-d tokens: point {part} at the encoder the weights were trained with")
        return got

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self.model.gradient_checkpointing = enabled
        if self.vision is not None:
            self.vision.gradient_checkpointing = enabled

    # -- inputs in RDT's form -----------------------------------------------------------------------
    def _indicator(self, size: int, like: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(like.shape[0], 1, self.unified_dim, dtype=like.dtype, device=like.device)
        mask[..., :size] = 1
        return mask

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pad(x, (0, self.unified_dim - x.shape[-1]))

    def _image_tokens(self, batch: dict, like: torch.Tensor) -> torch.Tensor:
        b = like.shape[0]
        if self.vision is None:
            return like.new_zeros(b, 1, self.rdt_shape.img_token_dim)
        if "images" not in batch:
            raise ValueError("the rdt policy has a vision backbone but the batch has no `images`")
        images = batch["images"]  # [B, T, N, 3, H, W] in [0, 1]
        steps = images.shape[1]
        frames = [images[:, max(0, steps - self.history + i)] for i in range(self.history)]  # first repeated
        images = torch.stack(frames, dim=1)
        missing = self.num_cameras - images.shape[2]
        if missing:
            pad = images.new_full((b, self.history, missing, *images.shape[3:]), BACKGROUND)
            images = torch.cat([images, pad], dim=2)
        tokens, _ = self.vision(images.flatten(1, 2))  # [B, T*N, L, C], frames time-major as RDT's
        return tokens.flatten(1, 2).to(like.dtype)

    def _conditions(self, batch: dict) -> dict[str, torch.Tensor]:
        state = batch["state"][:, -1:]  # [B, 1, S]
        b = state.shape[0]
        lang, lang_mask = self.language(list(batch["instruction"]), batch.get("task_index"))
        freq = batch.get("ctrl_freq")
        freq = torch.full((b,), self.cfg.rdt.control_frequency, device=state.device) if freq is None else freq
        return self.condition(lang.to(state.dtype), lang_mask.to(state.device), self._image_tokens(batch, state),
                              self._pad(state), self._indicator(self.meta.action_dim, state), freq.float(),
                              state_mask=self._indicator(self.meta.state_dim, state))

    # -- the Policy interface -------------------------------------------------------------------------
    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        actions = batch["action"]
        per_element = self.diffusion_loss(self._conditions(batch), self._pad(actions))
        out = masked_loss(per_element[..., : actions.shape[-1]], batch["action_mask"])
        out["diffusion_loss"] = out["loss"]
        return out

    def sample_actions(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        conditions = self._conditions(batch)
        b, device = batch["state"].shape[0], batch["state"].device
        noise = torch.randn(b, self.cfg.action_horizon, self.unified_dim, device=device, generator=generator)
        return self.sample_chunk(conditions, noise.to(conditions["state"].dtype))[..., : self.meta.action_dim]


for _name in RDT_PRESETS:
    register_policy(_name)(RDTPolicy)
