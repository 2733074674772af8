"""Config of the policy: the `model:` block."""

from __future__ import annotations

from pydantic import Field

from atlas.config.base import Section


class ModelConfig(Section):
    preset: str = Field("mlp", description="Policy preset registry key (mlp, atlas-tiny, atlas-small, ...).")
    action_horizon: int = Field(16, gt=0, description="Action chunk length predicted per observation.")
    hidden_dim: int = Field(256, gt=0, description="mlp: hidden width.")
    num_layers: int = Field(3, gt=0, description="mlp: hidden layers.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability.")
