"""Config sections of the training engine: optimization and the loop, memory options, metric sinks.

Declared beside the engine that reads them (as data/, models/ and sim/ declare theirs); every option is
documented where it is declared, and `atlas/config/schema.py` composes the sections into `AtlasConfig`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from atlas.config.base import Section
from atlas.engine.schedules import SCHEDULES

MAX_STEPS = 10**9
MAX_SEED = 2**31 - 1  # numpy seeds are 32-bit and the loop adds 1000 x rank
MAX_BATCH = 2**16  # per device; far above any policy that fits a GPU, far below an allocation that hangs the host
MAX_ACCUMULATION = 2**16


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
    min_lr: float = Field(
        0.0, ge=0.0, le=1.0, description="LR that cosine and linear decay reach at max_steps; at most the scaled peak LR."
    )
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
        None, gt=0, le=MAX_BATCH * MAX_ACCUMULATION,
        description="Samples per optimizer step over all processes; batch_size x world_size x accumulation."
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
    async_checkpoint: bool = Field(
        False, description="Copy the checkpoint's state to host memory and write it in a background thread (same "
        "atomic commit, manifest and latest rules; at most one save in flight); training waits only for the copy."
    )
    checkpoints_total_limit: int | None = Field(
        None, gt=0, description="Keep at most this many step checkpoints (never pruning best or latest)."
    )
    log_interval: int = Field(10, gt=0, description="Write training metrics every N optimizer steps.")
    compile: bool = Field(
        False, description="torch.compile the per-block modules (fusion blocks, a trainable vision backbone, the "
        "readout denoiser) in place; compile time is logged and excluded from samples_per_s."
    )
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile mode; the CUDA-graph modes (reduce-overhead, max-autotune) need "
        "gradient accumulation 1 and no dynamic_batch_size."
    )
    compile_backend: Literal["inductor", "aot_eager", "eager"] = Field(
        "inductor", description="torch.compile backend: inductor (generates kernels), aot_eager (traces forward "
        "and backward without generating code: fast to compile, for checking a model compiles)."
    )
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
        if self.lr_scheduler not in SCHEDULES:
            raise ValueError(
                f"training.lr_scheduler: unknown scheduler {self.lr_scheduler!r}; valid: {', '.join(SCHEDULES)}"
            )
        if self.warmup_steps > self.max_steps:
            raise ValueError(
                f"training.warmup_steps={self.warmup_steps} is longer than the run "
                f"(training.max_steps={self.max_steps}); the LR would never reach its peak"
            )
        for i, beta in enumerate(self.adam_betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"training.adam_betas[{i}]={beta} must be in [0, 1) (AdamW: e.g. 0.9, 0.999)")
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
