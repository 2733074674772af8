"""Config of the policy: the `model:` block. Each part's section sits beside its module."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from atlas.config.base import Section, switch_value
from atlas.models.fusion.config import FusionConfig
from atlas.models.heads.config import HeadConfig
from atlas.models.language.config import LanguageConfig
from atlas.models.presets import RDT_PRESETS, deep_merge, merge_preset
from atlas.models.rdt.config import RDTConfig
from atlas.models.vision.config import VisionConfig


class LoRAConfig(Section):
    rank: int = Field(8, gt=0, description="LoRA rank r of each adapter (B A, A: r x in, B: out x r).")
    alpha: float = Field(16.0, gt=0, description="LoRA scale numerator: the update is (alpha / rank) B A x.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the adapter's input (training only).")
    target_modules: list[str] = Field(
        ["fusion"],
        description="nn.Linear layers that get adapters: module prefixes (fusion, fusion.blocks.0) or module names "
        "(qkv, attn.proj, fc1); default every linear of the fusion transformer (attention q/k/v and output, MLP).",
    )
    trainable_modules: list[str] = Field(
        [], description="Module prefixes trained in full beside the adapters (e.g. [action_head] for a new head); "
        "every other base weight is frozen.",
    )


CHECKPOINT_CHOICE = re.compile(r"^(latest|best|step_\d+)$")


class ModelConfig(Section):
    preset: str = Field(
        "mlp", description="Policy preset (mlp, atlas-tiny, atlas-small, atlas-base, atlas-vggt, rdt-1b, rdt); "
        "it sets defaults that explicit fields override. rdt-1b/rdt are wired like RDT (atlas/models/rdt)."
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
    rdt: RDTConfig = Field(default_factory=RDTConfig, description="rdt policy: RDT's adaptors, history and inputs.")
    pretrained: str | None = Field(
        None, description="Initialise the weights from a trained policy: an Atlas run folder, a checkpoint folder, "
        "a model.safetensors file or RDT's release folder (config.json + pytorch_model.bin or model.safetensors, "
        "whose config.json then gives the rdt policy's shape under the fields set here; `atlas train --init-from "
        "PATH`). Only weights are taken: step, optimizer, schedule and data order start fresh; --resume of the "
        "fine-tune never reloads it.",
    )
    pretrained_checkpoint: str = Field(
        "best", description="Which checkpoint of a pretrained run folder: best (else latest), latest or step_N."
    )
    pretrained_weights: Literal["ema", "raw"] = Field(
        "ema", description="The checkpoint's EMA weights when it has them, or its raw weights."
    )
    pretrained_strict: bool = Field(
        True, description="Missing, unexpected or shape-mismatched tensors are an error (naming them); false: load "
        "what matches and keep the rest freshly initialised.",
    )
    pretrained_reinit: list[str] = Field(
        [], description="Module prefixes kept at their fresh initialisation (not loaded), e.g. [action_head] when "
        "the action dimension changes; their tensors may be missing or differ in shape.",
    )
    lora: LoRAConfig | None = Field(
        None, description="LoRA adapters {rank, alpha, dropout, target_modules}: base weights frozen, adapters "
        "trained (true: the defaults); None: full fine-tuning.",
    )

    @field_validator("lora", mode="before")
    @classmethod
    def _lora_switch(cls, value: Any) -> Any:
        """`lora: true` (or yes/on) turns LoRA on with its defaults; false (or no/off/none) turns it off."""
        switch = switch_value(value)
        if switch is None:
            return value
        return {} if switch else None

    @field_validator("pretrained_checkpoint")
    @classmethod
    def _check_checkpoint(cls, value: str) -> str:
        if not CHECKPOINT_CHOICE.match(value):
            raise ValueError(f"model.pretrained_checkpoint must be latest, best or step_N, got {value!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Preset defaults under the given fields, so `cfg.model.action_horizon` is already the preset's."""
        if not isinstance(data, dict):
            return data
        if data.get("pretrained") and isinstance(data["pretrained"], str):  # other types: the field's own error
            from atlas.models.rdt.fields import release_fields

            fields = release_fields(data["pretrained"])
            if fields and data.get("preset") not in RDT_PRESETS:
                raise ValueError(f"model.pretrained={data['pretrained']} is RDT's release folder: it needs "
                                 f"model.preset rdt or rdt-1b (RDT's wiring), not {data.get('preset', 'mlp')!r}")
            data = deep_merge(fields, data)
        return merge_preset(data)

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.fusion.width % self.fusion.num_heads:
            raise ValueError(
                f"model.fusion.width={self.fusion.width} is not divisible by model.fusion.num_heads={self.fusion.num_heads}"
            )
        f = self.fusion
        if self.preset in RDT_PRESETS:
            return self  # RDT's wiring is its own (atlas/models/rdt); the fusion flags below are AtlasPolicy's
        if f.alternate_cross_attention and not (f.cross_attention and self.language.name != "none" and self.vision.name != "none"):
            raise ValueError(
                "model.fusion.alternate_cross_attention alternates language and vision blocks: it needs "
                "model.fusion.cross_attention=true, a model.language encoder and a model.vision backbone"
            )
        return self

