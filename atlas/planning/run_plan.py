"""The run plan: everything a run is, resolved once.

`resolve_run_plan(cfg, hardware, resumed)` takes the loaded config, the hardware (world size, GPU memory,
the launcher's precision) and, when resuming, the checkpoint's batch split, and returns the micro-batch,
accumulation, effective batch, base and scaled LR (with `min_lr` checked against the *scaled* peak),
precision, memory options, steps per epoch and, on a GPU, the memory plan: what the configured
micro-batch needs (`configured`) and what the planner would change (`suggested`).

`atlas train`, `atlas plan` and `atlas doctor` all call it, so for the same YAML and world size they
show the same numbers or the same error; `plan.json` is written from it alone and nothing downstream
recomputes a piece of it. The config is never mutated: what the plan decides (auto_micro_batch, the
launcher's mixed precision) are fields of the plan, and `resolved_config` renders them into a copy.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace

from atlas.config.errors import ConfigError
from atlas.config.schema import AtlasConfig
from atlas.planning.batch import BatchPlan, plan_batch
from atlas.units import GIB

PRECISIONS = ("bf16", "fp16")


@dataclass(frozen=True)
class Hardware:
    """What the run is planned for. `gpu_memory_gb=None` and `gpu=None`: no GPU, so no memory plan."""

    world_size: int = 1
    gpu_memory_gb: float | None = None
    gpu: str | None = None  # a name from atlas/planning/hardware.py's table (4090, A100-80, H100 ...)
    cpu_cores: int | None = None
    launcher_precision: str | None = None  # `accelerate launch --mixed_precision` (ACCELERATE_MIXED_PRECISION)
    # `atlas train` on a GPU: a memory planner that fails is a warning, never a reason to stop a run the user
    # configured by hand; `atlas plan` lets the failure show
    planner_failure_is_warning: bool = False
    peak_tflops: float | None = None  # this GPU's dense bf16 peak (found by its CUDA name): MFU's denominator

    @property
    def has_gpu(self) -> bool:
        return self.gpu_memory_gb is not None or self.gpu is not None

    @classmethod
    def of_this_process(cls, device, world_size: int) -> Hardware:
        """The hardware `atlas train` runs on: the real GPU's memory, the launcher's precision."""
        memory, peak = None, None
        if device.type == "cuda":
            import torch

            from atlas.planning.hardware import gpu_from_device_name

            memory = torch.cuda.get_device_properties(device).total_memory / GIB
            spec = gpu_from_device_name(torch.cuda.get_device_name(device))
            peak = spec.bf16_tflops if spec is not None else None
        launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "").lower() or None
        return cls(world_size=world_size, gpu_memory_gb=memory, launcher_precision=launcher,
                   planner_failure_is_warning=True, peak_tflops=peak)


@dataclass(frozen=True)
class ResumedBatch:
    """The batch split a checkpoint was written with (trainer_state.json)."""

    micro_batch_size: int
    gradient_accumulation_steps: int
    world_size: int
    effective_batch_size: int


@dataclass(frozen=True)
class RunPlan:
    micro_batch_size: int
    gradient_accumulation_steps: int
    world_size: int
    effective_batch_size: int
    base_learning_rate: float
    learning_rate: float  # the peak after lr_scaling: what the schedule and plan.json use
    lr_scaling: str
    base_batch_size: int
    min_lr: float
    mixed_precision: str
    gradient_checkpointing: bool
    memory_efficient_attention: bool
    loader_workers: int = 0  # DataLoader workers per process: data_loading.num_workers, sized on a GPU
    profile: str | None = None
    samples_per_epoch: int | None = None
    memory_plan: dict | None = None  # on a GPU: {"budget_gb", "configured": {...}, "suggested": {...}}
    # MFU's terms on a GPU whose peak is known: {"train_flops_per_sample", "peak_flops_per_s"} (None: no MFU)
    mfu_basis: dict | None = None
    notes: tuple[str, ...] = ()  # what the plan decided and why: one log line each
    warnings: tuple[str, ...] = ()  # what the user should know before spending the GPU time
    # planner.Plan objects behind `memory_plan` ("configured", "suggested", and "run": the one this run does, the
    # suggestion once auto_micro_batch applied it), for `atlas plan`'s rendering
    planner: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def planned(self):
        """The planner's view of the run this plan does (None without a GPU)."""
        return self.planner.get("run")

    @property
    def steps_per_epoch(self) -> int | None:
        if not self.samples_per_epoch:
            return None
        return math.ceil(self.samples_per_epoch / self.effective_batch_size)

    def arithmetic(self) -> str:
        return (
            f"effective batch {self.effective_batch_size} = micro-batch {self.micro_batch_size} "
            f"x {self.world_size} process(es) x accumulation {self.gradient_accumulation_steps}"
        )

    def learning_rate_line(self) -> str:
        return (f"learning rate {self.learning_rate:.3g} (base {self.base_learning_rate:.3g}, "
                f"lr_scaling={self.lr_scaling}, base batch {self.base_batch_size})")

    def with_samples(self, samples_per_epoch: int) -> RunPlan:
        """The same plan once the dataset's size is known (steps per epoch follow from it)."""
        return replace(self, samples_per_epoch=samples_per_epoch)

    def to_dict(self) -> dict:
        """plan.json: the plan alone (no config lookups)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("planner", "notes", "warnings")}
        out["steps_per_epoch"] = self.steps_per_epoch
        out["notes"], out["warnings"] = list(self.notes), list(self.warnings)
        return out

    def resolved_config(self, cfg: AtlasConfig) -> AtlasConfig:
        """A copy of `cfg` with the plan's decisions written in (config.yaml of the run folder)."""
        out = cfg.model_copy(deep=True)
        out.data.batch_size = self.micro_batch_size
        out.training.mixed_precision = self.mixed_precision
        out.memory_optimization.gradient_checkpointing = self.gradient_checkpointing
        out.memory_optimization.memory_efficient_attention = self.memory_efficient_attention
        out.data_loading.num_workers = self.loader_workers
        return out


def _precision(cfg: AtlasConfig, hardware: Hardware) -> tuple[str, list[str], list[str]]:
    """`accelerate launch --mixed_precision bf16` (seed 002) is the user's intent when the config says "no"."""
    configured, launcher = cfg.training.mixed_precision, hardware.launcher_precision
    if launcher in PRECISIONS and configured == "no":
        return launcher, [f"mixed precision {launcher} from `accelerate launch --mixed_precision` (config said no)"], []
    if launcher in PRECISIONS and launcher != configured:
        return configured, [], [f"accelerate asked for {launcher} but training.mixed_precision={configured}; "
                                "using the config"]
    return configured, [], []


def _check_min_lr(cfg: AtlasConfig, batch: BatchPlan) -> None:
    t = cfg.training
    if t.lr_scheduler != "constant" and t.min_lr > batch.learning_rate:
        scaled = "" if batch.lr_scaling == "none" else (
            f", scaled {batch.lr_scaling} from training.learning_rate={t.learning_rate:g} by effective batch "
            f"{batch.effective_batch_size} / base batch {batch.base_batch_size}")
        raise ConfigError(f"training.min_lr={t.min_lr:g} is above the peak learning rate {batch.learning_rate:.3g}"
                          f"{scaled}: the {t.lr_scheduler} decay would climb instead of decaying; lower min_lr")


def _check_compile(cfg: AtlasConfig, accumulation: int) -> None:
    from atlas.engine.compile import CUDA_GRAPH_MODES

    t, mo = cfg.training, cfg.memory_optimization
    if not t.compile or t.compile_mode not in CUDA_GRAPH_MODES:
        return
    if accumulation > 1 or mo.dynamic_batch_size:
        why = (f"gradient accumulation ({accumulation} micro-batches per step)" if accumulation > 1
               else "memory_optimization.dynamic_batch_size (the batch shape changes on a back-off)")
        raise ConfigError(
            f"training.compile_mode={t.compile_mode} captures CUDA graphs, whose output buffers the next replay "
            f"overwrites: that breaks with {why}. Use training.compile_mode=default or "
            "max-autotune-no-cudagraphs, or one micro-batch per step")


GPU_DEFAULT_WORKERS = 4  # per process, when a GPU run left data_loading.num_workers at 0 and does not preload


def _loader_workers(cfg: AtlasConfig, hardware: Hardware) -> tuple[int, list[str]]:
    """DataLoader workers per process. On a GPU: at most one core per process less than the cores each
    process has (the loop needs one), and a run that reads from disk with 0 workers gets some, so the GPU
    does not wait on decoding (time/data_wait_ms shows it). On the CPU the configured number stands: the
    workers and the model share the same cores, and that trade is the user's."""
    wanted = cfg.data_loading.num_workers
    if not hardware.has_gpu:
        return wanted, []
    cores = hardware.cpu_cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    cores = cores or 1
    spare = max(0, cores // max(1, hardware.world_size) - 1)
    if wanted == 0 and not cfg.data_loading.preload_data:
        chosen = min(GPU_DEFAULT_WORKERS, spare)
        return chosen, ([f"data_loading.num_workers 0 -> {chosen} per process on a GPU (reads from disk; "
                         f"{cores} CPU cores for {hardware.world_size} process(es))"] if chosen else [])
    if wanted > spare:
        return spare, [f"data_loading.num_workers {wanted} -> {spare} per process: {cores} CPU cores for "
                       f"{hardware.world_size} process(es) leave one core each for the training loop"]
    return wanted, []


def _memory_plan(cfg: AtlasConfig, hardware: Hardware, batch: BatchPlan, precision: str, probe) -> tuple:
    """(memory record, the planner's plans, warnings): the configured micro-batch with the config's own
    memory options, and the planner's choice for the same effective batch."""
    from atlas.planning.planner import PlanRequest, make_plan

    mo = cfg.memory_optimization
    common = {"effective_batch_size": batch.effective_batch_size, "mixed_precision": precision,
              "cpu_cores": hardware.cpu_cores}
    suggested = make_plan(cfg, hardware.world_size, hardware.gpu_memory_gb, gpu=hardware.gpu,
                          request=PlanRequest(probe=probe, **common))
    configured = make_plan(cfg, hardware.world_size, hardware.gpu_memory_gb, gpu=hardware.gpu,
                           request=PlanRequest(probe=suggested.probe, micro_batch_size=batch.micro_batch_size, **common))
    record = {
        "budget_gb": round(suggested.budget_gb, 3),
        "configured": {"micro_batch_size": batch.micro_batch_size, "gradient_checkpointing": mo.gradient_checkpointing,
                       "memory_efficient_attention": mo.memory_efficient_attention,
                       "memory": configured.memory.to_dict(), "fits": configured.fits},
        "suggested": {"micro_batch_size": suggested.micro_batch_size,
                      "gradient_accumulation_steps": suggested.gradient_accumulation_steps,
                      "gradient_checkpointing": suggested.gradient_checkpointing,
                      "memory_efficient_attention": suggested.memory_efficient_attention,
                      "memory": suggested.memory.to_dict(), "fits": suggested.fits},
    }
    warnings = []
    if not configured.fits and not mo.auto_micro_batch:
        backoff = ("memory_optimization.dynamic_batch_size=true will halve it" if mo.dynamic_batch_size
                   else "set memory_optimization.dynamic_batch_size=true to back off")
        warnings.append(
            f"data.batch_size={batch.micro_batch_size} needs ~{configured.memory.total / GIB:.1f} GiB with "
            f"gradient_checkpointing={mo.gradient_checkpointing}, memory_efficient_attention="
            f"{mo.memory_efficient_attention}, of the {suggested.budget_gb:.1f} GB allowed (max_memory_usage): expect "
            f"out-of-memory ({backoff}); the planner's choice here is micro-batch {suggested.micro_batch_size} with "
            f"checkpointing={suggested.gradient_checkpointing} (memory_optimization.auto_micro_batch=true applies it)")
    return record, {"configured": configured, "suggested": suggested}, warnings


def resolve_run_plan(cfg: AtlasConfig, hardware: Hardware | None = None, resumed: ResumedBatch | None = None,
                     probe=None) -> RunPlan:
    """The run this config is on this hardware (see the module docstring). Raises ConfigError when the
    batch arithmetic cannot be met, naming what could be asked for instead."""
    hardware = hardware or Hardware()
    precision, notes, warnings = _precision(cfg, hardware)
    micro = resumed.micro_batch_size if resumed else cfg.data.batch_size
    batch = plan_batch(cfg.training, micro, hardware.world_size,
                       effective_batch_size=resumed.effective_batch_size if resumed else None)
    if resumed and resumed.world_size != hardware.world_size:
        notes.append(f"resuming a {resumed.world_size}-process run on {hardware.world_size}: effective batch stays "
                     f"{batch.effective_batch_size}, accumulation {resumed.gradient_accumulation_steps}"
                     f"→{batch.gradient_accumulation_steps}")
    _check_min_lr(cfg, batch)
    _check_compile(cfg, batch.gradient_accumulation_steps)
    mo = cfg.memory_optimization
    ckpt, mea = mo.gradient_checkpointing, mo.memory_efficient_attention
    memory, planner = None, {}
    if hardware.has_gpu:
        try:
            memory, planner, memory_warnings = _memory_plan(cfg, hardware, batch, precision, probe)
        except Exception as err:  # noqa: BLE001 - see Hardware.planner_failure_is_warning
            if not hardware.planner_failure_is_warning:
                raise
            memory, planner, memory_warnings = None, {}, [f"memory planner failed ({err}); training with the "
                                                           "configured micro-batch"]
        warnings += memory_warnings
        applied = memory is not None and mo.auto_micro_batch and not resumed
        if planner:
            planner = {**planner, "run": planner["suggested" if applied else "configured"]}
        if applied:
            s = memory["suggested"]
            ckpt, mea = s["gradient_checkpointing"], s["memory_efficient_attention"]
            batch = replace(batch, micro_batch_size=s["micro_batch_size"],
                            gradient_accumulation_steps=s["gradient_accumulation_steps"])
            notes.append(f"auto_micro_batch: micro-batch {batch.micro_batch_size}, accumulation "
                         f"{batch.gradient_accumulation_steps} (checkpointing={ckpt}, efficient attention={mea})")
    workers, worker_note = _loader_workers(cfg, hardware)
    notes += worker_note
    mfu_basis = None
    if planner and hardware.peak_tflops:
        flops = planner["configured"].probe.train_flops_per_sample
        mfu_basis = {"train_flops_per_sample": flops, "peak_flops_per_s": hardware.peak_tflops * 1e12}
    return RunPlan(
        micro_batch_size=batch.micro_batch_size, gradient_accumulation_steps=batch.gradient_accumulation_steps,
        world_size=batch.world_size, effective_batch_size=batch.effective_batch_size,
        base_learning_rate=batch.base_learning_rate, learning_rate=batch.learning_rate, lr_scaling=batch.lr_scaling,
        base_batch_size=batch.base_batch_size, min_lr=cfg.training.min_lr, mixed_precision=precision,
        gradient_checkpointing=ckpt, memory_efficient_attention=mea, loader_workers=workers, profile=cfg.profile,
        memory_plan=memory,
        mfu_basis=mfu_basis, notes=tuple(notes), warnings=tuple(warnings), planner=planner,
    )
