"""Config of the policy: the `model:` block. Each part's section sits beside its module."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from atlas.config.base import Section
from atlas.models.fusion.config import FusionConfig
from atlas.models.heads.config import HeadConfig
from atlas.models.language.config import LanguageConfig
from atlas.models.presets import merge_preset
from atlas.models.vision.config import VisionConfig


class ModelConfig(Section):
    preset: str = Field(
        "mlp", description="Policy preset (mlp, atlas-tiny, atlas-small, atlas-base, atlas-vggt, rdt-1b); "
        "it sets defaults that explicit fields override."
    )
    action_horizon: int = Field(16, gt=0, le=4096, description="Action chunk length predicted per observation.")
    hidden_dim: int = Field(256, gt=0, le=65536, description="mlp: hidden width.")
    num_layers: int = Field(3, gt=0, le=1024, description="mlp: hidden layers.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability.")
    unified_dim: int | None = Field(
        None, gt=0, description="Pad state and action into one space of this size (RDT: 128); None: the data's sizes."
    )
    vision: VisionConfig = Field(default_factory=VisionConfig, description="Vision backbone.")
    language: LanguageConfig = Field(default_factory=LanguageConfig, description="Instruction encoder.")
    fusion: FusionConfig = Field(default_factory=FusionConfig, description="Fusion transformer.")
    head: HeadConfig = Field(default_factory=HeadConfig, description="Action head.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Preset defaults under the given fields, so `cfg.model.action_horizon` is already the preset's."""
        return merge_preset(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.fusion.width % self.fusion.num_heads:
            raise ValueError(
                f"model.fusion.width={self.fusion.width} is not divisible by model.fusion.num_heads={self.fusion.num_heads}"
            )
        f = self.fusion
        if f.alternate_cross_attention and not (f.cross_attention and self.language.name != "none" and self.vision.name != "none"):
            raise ValueError(
                "model.fusion.alternate_cross_attention alternates language and vision blocks: it needs "
                "model.fusion.cross_attention=true, a model.language encoder and a model.vision backbone"
            )
        return self
