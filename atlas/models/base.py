"""The policy interface the loop and evaluation use, and nothing more:

  forward(batch) -> {"loss", "loss_sum", "num_valid", per-part losses}
  predict_action_chunk(obs, instruction) -> raw (un-normalized) actions [B, H, A]
  save_pretrained(dir) / from_pretrained(dir) (safetensors + config.json + normalization.json)
  num_parameters(trainable=None)

`loss_sum` is the sum of per-element losses over valid (unpadded) action elements and `num_valid`
their count, so the loop can normalize over the whole effective batch (see `atlas/engine/accumulation.py`).
Parameter names start with the module prefixes `vision.`, `language.`, `fusion.`, `action_head.`
(or any top-level name) that `training.lr_multipliers` keys refer to.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.engine.weight_files import read_weights, write_weights
from atlas.models.config import ModelConfig

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
NORMALIZATION_NAME = "normalization.json"


def masked_loss(per_element: torch.Tensor, mask: torch.Tensor, dim_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Sum and count of per-element losses [B, H, A] over valid rows (mask [B, H], True = real step) and, for a
    mixture padded to one action size, real action entries (dim_mask [B, A])."""
    weights = mask.to(per_element.dtype).unsqueeze(-1).expand_as(per_element)
    if dim_mask is not None:
        weights = weights * dim_mask.to(per_element.dtype).unsqueeze(1)
    loss_sum = (per_element * weights).sum()
    num_valid = weights.sum()
    return {"loss_sum": loss_sum, "num_valid": num_valid.detach(), "loss": loss_sum.detach() / num_valid.clamp_min(1)}


class Policy(nn.Module):
    """Base class: subclasses define `compute_loss` and `sample_actions` on normalized tensors."""

    def __init__(self, cfg: ModelConfig, meta: DatasetMeta, normalizer: Normalizer) -> None:
        super().__init__()
        self.cfg = cfg
        self.meta = meta
        self.normalizer = normalizer

    # -- to implement -------------------------------------------------------------------------
    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample_actions(self, batch: dict) -> torch.Tensor:
        """Normalized action chunk [B, H, A] for a normalized observation batch."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict, instruction: list[str]) -> torch.Tensor:
        """obs: `state` [B, T, S] raw floats, optional `images` uint8 [B, T, N, 3, H, W]; returns raw actions."""
        device = self.device
        state = torch.as_tensor(obs["state"], dtype=torch.float32, device=device)
        batch = {"state": self.normalizer.normalize("state", state), "instruction": list(instruction)}
        dim_mask = getattr(self.normalizer, "dim_mask", None)  # a mixture policy: which state entries are real
        if dim_mask is not None:
            batch["state_dim_mask"] = dim_mask("state", device).expand(state.shape[0], -1)
        if "images" in obs and obs["images"] is not None:
            batch["images"] = torch.as_tensor(obs["images"], device=device).float() / 255.0
        if "task_index" in obs:
            batch["task_index"] = torch.as_tensor(obs["task_index"], device=device)
        was_training = self.training
        self.eval()
        try:
            actions = self.sample_actions(batch)
        finally:
            self.train(was_training)
        return self.normalizer.unnormalize("action", actions.float())

    def num_parameters(self, trainable: bool | None = None) -> int:
        return sum(p.numel() for p in self.parameters() if trainable is None or p.requires_grad == trainable)

    def save_pretrained(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None,
                        rest: str | None = None) -> None:
        """`rest`: `state_dict` holds only some tensors, and the others are in ../model.safetensors (an EMA's:
        "raw") or in ./frozen.safetensors ("frozen"); atlas/engine/weight_files.py."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = state_dict if state_dict is not None else self.state_dict()
        write_weights(tensors, directory / WEIGHTS_NAME, rest=rest)
        config = {"model": self.cfg.model_dump(mode="json"), "meta": self.meta.to_dict()}
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        (directory / NORMALIZATION_NAME).write_text(json.dumps(self.normalizer.to_dict()))

    @staticmethod
    def from_pretrained(directory: str | Path, weights: str | Path | None = None, device: str = "cpu") -> Policy:
        """Rebuild from `config.json` + `normalization.json` and load safetensors weights (never pickle)."""
        from atlas.models.registry import build_policy

        directory = Path(directory)
        for name in (CONFIG_NAME, NORMALIZATION_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory} is not a saved policy: {name} is missing")
        config = json.loads((directory / CONFIG_NAME).read_text())
        normalizer = Normalizer.from_dict(json.loads((directory / NORMALIZATION_NAME).read_text()))
        policy = build_policy(ModelConfig(**config["model"]), DatasetMeta.from_dict(config["meta"]), normalizer)
        state = read_weights(weights or directory / WEIGHTS_NAME)
        policy.load_state_dict(state)
        return policy.to(device)
