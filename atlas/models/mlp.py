"""A small MLP policy: flattened state history + task embedding → action chunk, L1 loss.

It stands in for the full VLA model in loop tests and is the plain baseline the benchmarks compare to.
"""

from __future__ import annotations

import torch
from torch import nn

from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.base import Policy, masked_loss
from atlas.models.config import ModelConfig
from atlas.models.lora import apply_lora
from atlas.models.registry import register_policy


@register_policy("mlp")
class MLPPolicy(Policy):
    def __init__(self, cfg: ModelConfig, meta: DatasetMeta, normalizer: Normalizer) -> None:
        super().__init__(cfg, meta, normalizer)
        self.obs_horizon = 1
        self.task_embedding = nn.Embedding(max(1, len(meta.tasks)), 16)
        layers: list[nn.Module] = []
        width = meta.state_dim + 16
        for _ in range(cfg.num_layers):
            layers += [nn.Linear(width, cfg.hidden_dim), nn.LayerNorm(cfg.hidden_dim), nn.GELU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden_dim
        self.fusion = nn.Sequential(*layers)
        self.action_head = nn.Linear(width, cfg.action_horizon * meta.action_dim)
        apply_lora(self, cfg.lora)  # model.lora: adapters on the targeted linears, base weights frozen

    def _predict(self, batch: dict) -> torch.Tensor:
        state = batch["state"][:, -1]
        task = batch.get("task_index")
        if task is None:
            task = torch.zeros(state.shape[0], dtype=torch.long, device=state.device)
        features = torch.cat([state, self.task_embedding(task.clamp_min(0))], dim=-1)
        out = self.action_head(self.fusion(features))
        return out.view(state.shape[0], self.cfg.action_horizon, self.meta.action_dim)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        per_element = (self._predict(batch) - batch["action"]).abs()
        return masked_loss(per_element, batch["action_mask"], batch.get("action_dim_mask"))

    def sample_actions(self, batch: dict) -> torch.Tensor:
        return self._predict(batch)
