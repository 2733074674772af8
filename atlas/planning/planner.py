"""Fit a config to hardware: the largest micro-batch under `max_memory_usage × GPU memory`, accumulation
from the effective batch, memory options only when needed, the scaled LR and the DataLoader workers.

`make_plan` is what `atlas plan` prints and what `atlas train` applies, so both use the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from atlas.config.errors import ConfigError
from atlas.config.schema import AtlasConfig
from atlas.planning.batch import plan_batch, reachable_batches
from atlas.planning.hardware import DEFAULT_MFU, GIB, GPUSpec, find_gpu, gpu_for_memory
from atlas.planning.memory import MemoryBreakdown, breakdown, max_micro_batch, resolve_strategy
from atlas.planning.probe import ModelProbe, probe_model
from atlas.planning.timing import StepTime, scaling_table

# Cheapest first: efficient attention costs no compute, checkpointing costs a recompute.
OPTIONS = ((False, False), (False, True), (True, False), (True, True))


@dataclass
class Plan:
    gpu: GPUSpec
    gpus: int
    budget_gb: float
    strategy: str
    micro_batch_size: int
    gradient_accumulation_steps: int
    effective_batch_size: int
    learning_rate: float
    base_learning_rate: float
    gradient_checkpointing: bool
    memory_efficient_attention: bool
    max_micro_batch: dict[str, int]
    memory: MemoryBreakdown
    fits: bool
    workers_per_process: int
    cpu_cores: int
    mfu: float
    timing: list[StepTime]
    probe: ModelProbe
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        p = self.probe.params
        return {
            "gpu": self.gpu.to_dict(), "gpus": self.gpus, "world_size": self.gpus, "budget_gb": round(self.budget_gb, 3),
            "strategy": self.strategy, "micro_batch_size": self.micro_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "effective_batch_size": self.effective_batch_size, "learning_rate": self.learning_rate,
            "base_learning_rate": self.base_learning_rate, "gradient_checkpointing": self.gradient_checkpointing,
            "memory_efficient_attention": self.memory_efficient_attention, "max_micro_batch": self.max_micro_batch,
            "memory": self.memory.to_dict(), "fits": self.fits, "workers_per_process": self.workers_per_process,
            "cpu_cores": self.cpu_cores, "mfu": self.mfu,
            "parameters": {"total": p.total, "trainable": p.trainable, "frozen": p.frozen, "by_module": p.by_module},
            "flops_per_sample": {"forward": self.probe.forward_flops_per_sample, "train": self.probe.train_flops_per_sample},
            "activation_fit": {k: {"fixed_bytes": v.fixed_bytes, "per_sample_bytes": v.per_sample_bytes}
                               for k, v in self.probe.activations.items()},
            "probe_seconds": round(self.probe.seconds, 2), "timing": [row.to_dict() for row in self.timing],
            "notes": list(self.notes),
        }


def largest_divisor_at_most(n: int, cap: int) -> int:
    return max((d for d in range(1, min(n, cap) + 1) if n % d == 0), default=0)


def choose_micro_batch(per_process: int, cap: Callable[[bool, bool], int], wanted: int) -> tuple[int, bool, bool]:
    """First (cheapest) option that reaches `wanted`; else the option giving the largest micro-batch.

    `cap` is asked option by option, so options that are not needed are never probed.
    """
    best = (0, False, False)
    for ckpt, mea in OPTIONS:
        micro = largest_divisor_at_most(per_process, cap(ckpt, mea))
        if micro >= wanted:
            return micro, ckpt, mea
        if micro > best[0]:
            best = (micro, ckpt, mea)
    return best


def default_kernel_is_efficient(probe: ModelProbe, mixed_precision: str, sdpa_default: bool | None = None) -> tuple[bool, str]:
    """Whether a CUDA GPU runs the flash/efficient SDPA kernel with memory_efficient_attention off, and why.

    Rule: memory_efficient_attention=false leaves the choice to SDPA, which on a CUDA GPU in bf16/fp16 with
    no attention mask dispatches to flash/memory-efficient attention, and with a mask (RDT's language mask) to
    the memory-efficient kernel, which takes masks at the same O(L) memory; the math kernel (and its saved
    attention matrix) applies in fp32 or when the code pins the math kernel. `sdpa_default` overrides what the probe
    saw about pinning (the doctor judges RDT's own
    code, which calls F.scaled_dot_product_attention without pinning, through Atlas's stand-in model).
    """
    use = probe.attention
    pinned = use.math_pinned if sdpa_default is None else not sdpa_default
    if use.calls == 0:
        return False, "no scaled_dot_product_attention in the trainable model"
    if mixed_precision not in ("bf16", "fp16"):
        return False, "fp32: SDPA's flash kernel needs bf16/fp16, so the math-kernel estimate applies"
    if pinned:
        return False, ("memory_efficient_attention=false pins the math kernel in this model's attention "
                       "(atlas/models/layers.py): math-kernel estimate")
    if use.masked:
        return True, ("memory_efficient_attention=false lets SDPA choose: the model passes an attention mask, "
                      "which rules out flash, so on a CUDA GPU in "
                      f"{mixed_precision} it is the memory-efficient kernel (it takes masks), whose estimate applies")
    return True, ("memory_efficient_attention=false lets SDPA choose: on a CUDA GPU in "
                  f"{mixed_precision} with no attention mask that is the flash/efficient kernel, so its estimate applies")


def pretrained_check(cfg: AtlasConfig) -> tuple[str, str] | None:
    """model.pretrained: whether the checkpoint's tensor shapes are the config's model's (models/pretrained.py)."""
    if cfg.model.pretrained is None:
        return None
    from atlas.models.pretrained import check_shapes
    from atlas.planning.probe import build_model, dataset_meta

    return check_shapes(cfg, build_model(cfg, dataset_meta(cfg), False, False, device="meta"))


@dataclass(frozen=True)
class PlanRequest:
    """How to plan, beyond the config and the hardware. `effective_batch_size` and `mixed_precision` come
    from the run plan (atlas/planning/run_plan.py), which owns the batch arithmetic; `micro_batch_size` pins
    the micro-batch (to judge a user's choice); `sdpa_default` see `default_kernel_is_efficient`."""

    effective_batch_size: int | None = None
    mixed_precision: str | None = None
    strategy: str | None = None
    probe: ModelProbe | None = None
    cpu_cores: int | None = None
    mfu: float | None = None
    micro_batch_size: int | None = None
    sdpa_default: bool | None = None


def make_plan(cfg: AtlasConfig, gpus: int = 1, gpu_memory_gb: float | None = None, *, gpu: str | None = None,
              request: PlanRequest | None = None) -> Plan:
    """The largest micro-batch (and the cheapest memory options) that fit the GPU for the run plan's
    effective batch. Without `request.effective_batch_size` the run plan is resolved here first."""
    r = request or PlanRequest()
    if r.effective_batch_size is None or r.mixed_precision is None:
        from atlas.planning.run_plan import Hardware, resolve_run_plan

        run = resolve_run_plan(cfg, Hardware(world_size=gpus))
        r = replace(r, effective_batch_size=r.effective_batch_size or run.effective_batch_size,
                    mixed_precision=r.mixed_precision or run.mixed_precision)
    strategy, probe, cpu_cores, mfu = r.strategy, r.probe, r.cpu_cores, r.mfu
    micro_batch_size, sdpa_default = r.micro_batch_size, r.sdpa_default
    spec = find_gpu(gpu) if gpu else gpu_for_memory(gpu_memory_gb or 80)
    if gpu_memory_gb is not None and gpu_memory_gb != spec.memory_gb:
        spec = GPUSpec(f"{spec.name} ({gpu_memory_gb:g} GB)", gpu_memory_gb, spec.bf16_tflops, spec.link, spec.link_gbps)
    mp = r.mixed_precision
    configured = cfg.training.strategy
    if configured == "deepspeed":
        configured = f"zero{cfg.training.zero_stage}"
    strat = resolve_strategy(strategy or configured, gpus, mp)
    probe = probe or probe_model(cfg)
    budget = cfg.memory_optimization.max_memory_usage * spec.memory_gb * GIB
    ema = cfg.training.ema.enabled
    caps: dict[tuple[bool, bool], int] = {}
    efficient_default, kernel_note = default_kernel_is_efficient(probe, mp, sdpa_default)

    def kernel(mea: bool) -> bool:
        return mea or efficient_default

    def cap(ckpt: bool, mea: bool) -> int:
        caps[(ckpt, mea)] = max_micro_batch(probe, budget, strat, gpus, mp, ema, ckpt, kernel(mea))
        return caps[(ckpt, mea)]

    target = r.effective_batch_size
    checked = pretrained_check(cfg)
    notes: list[str] = [f"attention kernel: {kernel_note}", *([checked[1]] if checked else [])]
    if target % gpus:
        raise ConfigError(
            f"effective batch {target} cannot be split over {gpus} GPUs; reachable: {reachable_batches(target, gpus)}"
        )
    per_process = target // gpus
    if micro_batch_size is not None:
        micro = micro_batch_size
        ckpt = cfg.memory_optimization.gradient_checkpointing
        mea = cfg.memory_optimization.memory_efficient_attention
        cap(ckpt, mea)
        if per_process % micro:
            raise ConfigError(f"effective batch {target} is not micro-batch {micro} x {gpus} GPUs x an integer; "
                              f"reachable: {reachable_batches(target, micro * gpus)}")
    else:
        micro, ckpt, mea = choose_micro_batch(per_process, cap, min(per_process, cfg.data.batch_size))
        if micro == 0:
            micro, ckpt, mea = 1, True, True
            notes.append(f"even micro-batch 1 with checkpointing does not fit {spec.memory_gb:g} GB under {strat}; "
                         "shard more (zero3/fsdp), freeze modules or use a larger GPU")
    batch = plan_batch(cfg.training, micro, gpus, effective_batch_size=target)
    memory = breakdown(probe, micro, strat, gpus, mp, ema, ckpt, kernel(mea))
    fits = memory.total <= budget
    cores = cpu_cores or os.cpu_count() or 1
    wanted_workers = cfg.data_loading.num_workers
    workers = min(wanted_workers, max(0, cores // gpus - 1))
    if workers < wanted_workers:
        notes.append(f"data_loading.num_workers={wanted_workers} x {gpus} processes = {wanted_workers * gpus} workers "
                     f"for {cores} CPU cores; {workers} per process leaves one core per process for the loop")
    mfu = mfu or DEFAULT_MFU
    timing = scaling_table(probe, spec, mfu, target, micro, cfg.training.max_steps, strat, ckpt)
    return Plan(spec, gpus, budget / GIB, strat, micro, batch.gradient_accumulation_steps, batch.effective_batch_size,
                batch.learning_rate, batch.base_learning_rate, ckpt, mea,
                {f"ckpt={int(c)},mea={int(m)}": v for (c, m), v in caps.items()}, memory, fits, workers, cores, mfu,
                timing, probe, notes)
