"""The run's parts, built once from the config and the run plan: what the loop works with.

`build_run_parts` is the one place that turns config sections and the plan into live objects (data,
policy, strategy-wrapped model, optimizer, scaler, EMA, checkpointer, loader, metric sinks, the step
clock and its watchers). The order of construction is part of the contract: it fixes what each RNG
draw initialises, so a resumed run is bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from atlas.config import AtlasConfig
from atlas.data.device_copies import DeviceCopies
from atlas.data.loader import BatchSplit, StepBatches
from atlas.data.registry import DataBundle, build_data
from atlas.data.sampler import SampleStream
from atlas.engine import distributed as D
from atlas.engine.checkpoint import (
    Checkpointer,
    CheckpointSettings,
    CheckpointStore,
    TrainerState,
    TrainingObjects,
    full_weights,
)
from atlas.engine.clock import StepClock
from atlas.engine.compat import check_resume_compatible
from atlas.engine.compile import compile_policy
from atlas.engine.ema import EMA
from atlas.engine.faults import FaultInjector
from atlas.engine.metrics import MetricLogger
from atlas.engine.nonfinite import NonFiniteGuard, NonFiniteWatch
from atlas.engine.optim import build_optimizer, build_param_groups
from atlas.engine.precision import autocast_factory
from atlas.engine.schedules import schedule_record
from atlas.engine.strategies import Strategy, StrategySettings, build_strategy
from atlas.engine.timers import PhaseTimers
from atlas.models.pretrained import initialise_from_pretrained
from atlas.models.registry import build_policy
from atlas.planning.run_plan import RunPlan


@dataclass
class RunParts:
    cfg: AtlasConfig
    plan: RunPlan
    ctx: D.DistContext
    log: logging.Logger
    data: DataBundle
    policy: torch.nn.Module  # the whole policy (parameters possibly sharded in place)
    model: torch.nn.Module  # what forward is called on: DDP/FSDP/DeepSpeed-wrapped
    strategy: Strategy
    objects: TrainingObjects  # policy, optimizer, scaler, EMA: what a checkpoint holds
    trainable: list[torch.Tensor]
    checkpointer: Checkpointer
    stream: SampleStream
    batches: StepBatches
    metrics: MetricLogger
    autocast: object  # () -> context manager
    clock: StepClock
    guard: NonFiniteGuard
    timers: PhaseTimers
    device_copies: DeviceCopies  # CUDA: the next micro-batch's copy overlaps the current one's compute
    num_parameters: int
    trainable_parameters: int
    pretrained: dict | None = None  # model.pretrained's load report and normalization (plan.json `pretrained`)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.objects.optimizer

    @property
    def ema(self) -> EMA | None:
        return self.objects.ema


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_run_parts(cfg: AtlasConfig, plan: RunPlan, ctx: D.DistContext, run_dir: Path,
                    resume_from: Path | None, state: TrainerState, log: logging.Logger) -> RunParts:
    """Every part of the run, in the order that keeps resume bitwise (see the module docstring)."""
    tc = cfg.training
    seed_everything(tc.seed)
    data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, tc.seed, plan.effective_batch_size)
    for line in data.log_lines:
        log.info(line)
    settings = StrategySettings(plan.mixed_precision, plan.micro_batch_size, plan.gradient_accumulation_steps,
                                cfg.memory_optimization.dynamic_batch_size)
    strategy = build_strategy(tc, settings, ctx, log)
    policy = build_policy(cfg.model, data.meta, data.normalizer, gradient_checkpointing=plan.gradient_checkpointing,
                          memory_efficient_attention=plan.memory_efficient_attention).to(ctx.device)
    _, group_lines = build_param_groups(policy, tc.lr_multipliers, tc.weight_decay)  # freezes multiplier-0 modules
    for line in group_lines:
        log.info(line)
    # model.pretrained: into the whole policy, before compiling and sharding (a resume loads its own weights below)
    pretrained = initialise_from_pretrained(policy, cfg.model, cfg.data.stats, data, log, resumed_from=resume_from)
    if tc.compile:  # in place, after freezing (a frozen backbone is not compiled), before any wrapping
        compile_policy(policy, tc.compile_mode, tc.compile_backend, log)
    num_params, num_trainable = policy.num_parameters(), policy.num_parameters(True)  # before ZeRO-3 empties them
    log.info(f"policy {cfg.model.preset}: {num_params:,} params, {num_trainable:,} trainable")

    def make_optimizer() -> torch.optim.Optimizer:  # over the parameters the strategy leaves (FSDP: DTensors)
        groups, _ = build_param_groups(policy, tc.lr_multipliers, tc.weight_decay)
        return build_optimizer(groups, plan.learning_rate, tc.adam_betas, tc.adam_eps, strategy.fused_optimizer)

    if resume_from:  # the same model as configured, or a message naming the tensors that differ
        check_resume_compatible(resume_from, policy)
    weights = full_weights(resume_from, str(ctx.device)) if resume_from else None
    model, optimizer = strategy.setup(policy, make_optimizer, weights)
    log.info(f"strategy: {strategy.label} over {ctx.world_size} process(es)")
    # built from the strategy's parameters: sharded alike (FSDP shards, ZeRO-3 partitions)
    ema = EMA(policy, tc.ema, strategy.local_tensor) if tc.ema.enabled else None
    _log_layout(strategy, policy, ema, ctx, log)
    objects = TrainingObjects(policy, strategy, optimizer, strategy.grad_scaler(), ema, ctx)
    schedule = schedule_record(plan.learning_rate, tc.lr_scheduler, tc.warmup_steps, tc.max_steps, tc.min_lr)
    checkpointer = Checkpointer(CheckpointStore(run_dir / "checkpoints", tc.checkpoints_total_limit), objects,
                                CheckpointSettings(tc.checkpoint_interval, tc.on_save_error, schedule,
                                                   tc.async_checkpoint))
    if resume_from:
        checkpointer.load(resume_from)
    else:
        torch.manual_seed(tc.seed + 1000 * ctx.rank)  # per-rank noise/dropout; weights already built
    clock = StepClock(state.step)
    FaultInjector(ctx.rank, clock).attach(policy)  # ATLAS_INJECT_* test hooks: inert unless set
    watch = NonFiniteWatch(clock)  # the loop hands it each training output (atlas/loop/step.py)
    stream = SampleStream(len(data.train), tc.seed, cfg.data.sampling, data.train.episode_ranges)
    split = BatchSplit(state.micro_batch_size, state.gradient_accumulation_steps, ctx.world_size, ctx.rank)
    loading = cfg.data_loading.model_copy(update={"num_workers": plan.loader_workers})  # sized by the plan
    batches = StepBatches(data.train, stream, split, state.samples_seen, loading, pin_memory=ctx.device.type == "cuda")
    device_copies = DeviceCopies(ctx.device)
    if device_copies.overlapped:
        log.info("input pipeline: pinned host batches, each micro-batch copied to the GPU on a side stream while "
                 "the one before it computes; normalization and augmentation run on the GPU")
    lc = cfg.logging
    metrics = MetricLogger(run_dir, ctx.is_main, lc.tensorboard,
                           {"project": lc.wandb_project, "mode": lc.wandb_mode} if lc.wandb else None)
    return RunParts(cfg, plan, ctx, log, data, policy, model, strategy, objects,
                    [p for p in policy.parameters() if p.requires_grad], checkpointer, stream, batches, metrics,
                    autocast_factory(ctx.device, plan.mixed_precision), clock,
                    NonFiniteGuard(watch, tc.max_nonfinite_steps, ctx, log), PhaseTimers(), device_copies, num_params,
                    num_trainable, pretrained)


def _log_layout(strategy: Strategy, policy: torch.nn.Module, ema: EMA | None, ctx: D.DistContext,
                log: logging.Logger) -> None:
    """What each rank holds (the strategy's describe()), gathered into train.log by rank 0 and printed by
    each rank on stderr."""
    if not ctx.distributed:
        return
    lines = strategy.describe(policy, ema.state_dict() if ema is not None else None)
    for line in lines:
        print(line, file=sys.stderr, flush=True)
    for rank_lines in D.gather_objects(lines, ctx):
        for line in rank_lines:
            log.info(line)
