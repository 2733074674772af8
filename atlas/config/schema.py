"""The one Atlas config schema. Every option is documented where it is declared.

Sections that belong to a component live beside it (`atlas/data/config.py`, `atlas/models/config.py`,
`atlas/sim/config.py`, `atlas/engine/config.py`); this module composes them. The README's config reference is generated
from this schema (`python -m atlas.config.reference`).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from atlas.config.base import Section
from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.engine.config import (  # noqa: F401 - the engine's sections, composed here
    EMAConfig,
    LoggingConfig,
    MemoryOptimizationConfig,
    TrainingConfig,
)
from atlas.models.config import ModelConfig
from atlas.sim.config import EvalConfig

# The seeds write some settings in two places; (seed's place, canonical place).
DUPLICATED_SETTINGS = (
    ("training.batch_size", "data.batch_size"),
    ("memory_optimization.gradient_accumulation_steps", "training.gradient_accumulation_steps"),
    ("memory_optimization.num_workers", "data_loading.num_workers"),
    ("memory_optimization.prefetch_factor", "data_loading.prefetch_factor"),
)


class AtlasConfig(Section):
    profile: str | None = Field(None, description="Hardware profile overlaid under this file: cpu, gpu_24gb, gpu_48gb, gpu_80gb, auto.")
    data: DataConfig = Field(default_factory=DataConfig, description="Dataset and sampling.")
    data_loading: DataLoadingConfig = Field(default_factory=DataLoadingConfig, description="DataLoader settings.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Policy architecture.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Optimization and the loop.")
    memory_optimization: MemoryOptimizationConfig = Field(
        default_factory=MemoryOptimizationConfig, description="How a batch is computed within memory."
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Metric sinks.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Closed-loop evaluation in simulation.")

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        from atlas.config.loader import PROFILES

        if value is not None and value not in (*PROFILES, "auto"):
            raise ValueError(f"unknown profile {value!r}; valid: {', '.join(PROFILES)}, auto")
        return value

    @model_validator(mode="after")
    def _merge_duplicated_settings(self) -> AtlasConfig:
        """Seed 003 puts accumulation and worker settings under memory_optimization; accept both places."""
        for seed_key, canonical_key in DUPLICATED_SETTINGS:
            seed_value = _get(self, seed_key)
            if seed_value is None:
                continue
            canonical_value = _get(self, canonical_key)
            explicit = canonical_key.split(".")[1] in _section(self, canonical_key).model_fields_set
            if explicit and canonical_value != seed_value:
                raise ValueError(
                    f"{seed_key}={seed_value} disagrees with {canonical_key}={canonical_value}; "
                    f"set one of them (they are the same setting)"
                )
            _set(self, canonical_key, seed_value)
        return self


def _section(cfg: AtlasConfig, dotted: str) -> Section:
    return getattr(cfg, dotted.split(".")[0])


def _get(cfg: AtlasConfig, dotted: str):
    return getattr(_section(cfg, dotted), dotted.split(".")[1])


def _set(cfg: AtlasConfig, dotted: str, value) -> None:
    setattr(_section(cfg, dotted), dotted.split(".")[1], value)
