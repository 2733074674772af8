"""The one Atlas config schema. Every option is documented where it is declared.

Sections that belong to a component live beside it (`atlas/data/config.py`, `atlas/models/config.py`,
`atlas/sim/config.py`); the loop-level sections live here. The README's config reference is generated
from this schema (`python -m atlas.config.reference`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from atlas.config.base import Section
from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.models.config import ModelConfig
from atlas.sim.config import EvalConfig

SCHEDULERS = ("constant", "cosine", "linear")
MAX_STEPS = 10**9
MAX_SEED = 2**31 - 1  # numpy seeds are 32-bit and the loop adds 1000 x rank
MAX_BATCH = 2**16  # per device; far above any policy that fits a GPU, far below an allocation that hangs the host
MAX_ACCUMULATION = 2**16

# The seeds write some settings in two places; (seed's place, canonical place).
DUPLICATED_SETTINGS = (
    ("training.batch_size", "data.batch_size"),
    ("memory_optimization.gradient_accumulation_steps", "training.gradient_accumulation_steps"),
    ("memory_optimization.num_workers", "data_loading.num_workers"),
    ("memory_optimization.prefetch_factor", "data_loading.prefetch_factor"),
)


class EMAConfig(Section):
    enabled: bool = Field(False, description="Keep an fp32 exponential moving average of the weights.")
    decay: float | None = Field(
        None, gt=0.0, lt=1.0, description="Fixed decay. None: warmup form min(max_decay, 1-(1+step)^-power)."
    )
    power: float = Field(0.75, gt=0.0, description="Warmup form exponent (RDT: 0.75).")
    max_decay: float = Field(0.9999, gt=0.0, lt=1.0, description="Upper bound of the warmup-form decay (RDT: 0.9999).")


class TrainingConfig(Section):
    learning_rate: float = Field(
        1e-4, gt=0.0, le=1.0, description="Peak LR for multiplier-1 parameters, before lr_scaling (at most 1)."
    )
    min_lr: float = Field(0.0, ge=0.0, le=1.0, description="LR that cosine and linear decay reach at max_steps.")
    lr_scheduler: str = Field("cosine", description="constant, cosine or linear; each with linear warmup from 0.")
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS, description="Optimizer steps of linear warmup; step s<=warmup uses lr*s/warmup.")
    max_steps: int = Field(1000, gt=0, le=MAX_STEPS, description="Optimizer steps (one per effective batch) of the whole run.")
    gradient_accumulation_steps: int | None = Field(
        None, gt=0, le=MAX_ACCUMULATION, description="Micro-batches per optimizer step. None: derived from effective_batch_size (else 1)."
    )
    batch_size: int | None = Field(
        None, gt=0, le=MAX_BATCH, description="Seed 001's place for data.batch_size (per device; must agree if both set)."
    )
    effective_batch_size: int | None = Field(
        None, gt=0, le=MAX_BATCH * MAX_ACCUMULATION, description="Samples per optimizer step over all processes; batch_size x world_size x accumulation."
    )
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none", description="Scale learning_rate by effective_batch/base_batch_size (linear) or its square root."
    )
    base_batch_size: int | None = Field(
        None, gt=0, le=MAX_BATCH * MAX_ACCUMULATION, description="Batch the learning_rate was tuned for (default: data.batch_size)."
    )
    lr_multipliers: dict[str, float] = Field(
        default_factory=dict,
        description="LR multiplier by module-name prefix (vision, language, fusion, action_head); 0 freezes the module.",
    )
    weight_decay: float = Field(
        0.01, ge=0.0, le=1.0, description="AdamW decoupled weight decay, at most 1 (never on biases or norm weights)."
    )
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas, each in [0, 1).")
    adam_eps: float = Field(1e-8, gt=0.0, le=1.0, description="AdamW epsilon, in (0, 1].")
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="Clip the global grad norm to this (None: no clipping).")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="Autocast dtype; fp16 adds a grad scaler.")
    seed: int = Field(42, ge=0, le=MAX_SEED, description="Seeds weights, data order, noise and augmentation (0 to 2**31-1).")
    ema: EMAConfig = Field(default_factory=EMAConfig, description="Exponential moving average of the weights.")
    val_interval: int = Field(1000, ge=0, description="Validate every N optimizer steps (0: never).")
    val_batches: int | None = Field(None, gt=0, description="Cap validation at this many micro-batches per process.")
    checkpoint_interval: int = Field(1000, gt=0, description="Save a checkpoint every N optimizer steps and at the end.")
    checkpoints_total_limit: int | None = Field(
        None, gt=0, description="Keep at most this many step checkpoints (never pruning best or latest)."
    )
    log_interval: int = Field(10, gt=0, description="Write training metrics every N optimizer steps.")
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed"] = Field(
        "auto",
        description="Multi-process strategy: auto/ddp (replicated), fsdp (FSDP2: weights, gradients, optimizer "
        "state and EMA sharded), deepspeed (ZeRO, needs the deepspeed extra). One process trains unsharded.",
    )
    zero_stage: Literal[1, 2, 3] = Field(
        2,
        description="DeepSpeed ZeRO stage under strategy=deepspeed: 1 partitions the optimizer state, 2 also the "
        "gradients, 3 also the weights and the EMA.",
    )
    max_nonfinite_steps: int = Field(10, gt=0, description="Stop after this many non-finite steps in a row.")
    hang_timeout_s: float = Field(1800.0, gt=0, description="Dump stacks if no step finished for this long.")
    on_save_error: Literal["stop", "continue"] = Field(
        "stop",
        description="A checkpoint that cannot be written (disk full, unwritable folder): stop training with the "
        "space it needs, or log that and keep training. Earlier checkpoints and latest stay intact either way.",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(
                f"training.lr_scheduler: unknown scheduler {self.lr_scheduler!r}; valid: {', '.join(SCHEDULERS)}"
            )
        if self.warmup_steps > self.max_steps:
            raise ValueError(
                f"training.warmup_steps={self.warmup_steps} is longer than the run "
                f"(training.max_steps={self.max_steps}); the LR would never reach its peak"
            )
        for i, beta in enumerate(self.adam_betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"training.adam_betas[{i}]={beta} must be in [0, 1) (AdamW: e.g. 0.9, 0.999)")
        if self.min_lr > self.learning_rate:
            raise ValueError(f"training.min_lr={self.min_lr} is above training.learning_rate={self.learning_rate}")
        return self


class MemoryOptimizationConfig(Section):
    dynamic_batch_size: bool = Field(False, description="On out-of-memory halve the micro-batch and double accumulation.")
    max_memory_usage: float = Field(0.95, gt=0.0, le=1.0, description="CUDA per-process memory fraction.")
    gradient_accumulation_steps: int | None = Field(
        None, gt=0, description="Seed 003's place for training.gradient_accumulation_steps (must agree if both set)."
    )
    memory_efficient_attention: bool = Field(False, description="Use the memory-efficient/flash SDPA kernel.")
    gradient_checkpointing: bool = Field(False, description="Recompute each transformer block in backward.")
    auto_micro_batch: bool = Field(
        False,
        description="On CUDA, let the planner (atlas plan) pick the largest micro-batch, checkpointing and attention "
        "kernel that fit max_memory_usage x GPU memory, keeping the effective batch (set training.effective_batch_size).",
    )
    num_workers: int | None = Field(None, ge=0, description="Seed 003's place for data_loading.num_workers.")
    prefetch_factor: int | None = Field(None, ge=1, description="Seed 003's place for data_loading.prefetch_factor.")


class LoggingConfig(Section):
    tensorboard: bool = Field(True, description="Write TensorBoard event files under tensorboard/.")
    wandb: bool = Field(False, description="Also log to Weights & Biases (offline mode works without network).")
    wandb_project: str = Field("atlas", description="wandb project name.")
    wandb_mode: Literal["online", "offline", "disabled"] = Field("offline", description="wandb mode.")
    progress_bar: bool = Field(True, description="tqdm bar on rank 0.")


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
