"""The Atlas training loop, readable top to bottom.

    atlas train --config FILE [--output-dir DIR] [--resume auto|PATH] [KEY=VALUE ...]
    python atlas/train.py --config FILE ...            (the seeds' own command)
    torchrun --nproc_per_node=N -m atlas.train --config FILE ...

One optimizer step = one effective batch. Each rank reads its micro-batches of the step (see
atlas/data/sampler.py), the loss of every micro-batch is its sum over valid action elements divided by
the count of valid elements in the whole effective batch (all ranks), so accumulation gives the same
update as one large batch, however it is split. Components get only the config section they need.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, "") and __name__ == "__main__":  # `python atlas/train.py`: import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import numpy as np
import torch

from atlas.config import AtlasConfig, dump_config, load_config
from atlas.data.registry import build_data
from atlas.data.sampler import SampleStream, shard_sequential
from atlas.engine import distributed as D
from atlas.engine.batches import StepBatches, resplit, valid_elements
from atlas.engine.checkpoint import (
    CheckpointStore,
    SaveFailed,
    load_torch,
    load_weights,
    rng_state,
    set_rng_state,
)
from atlas.engine.ema import EMA
from atlas.engine.faults import FaultInjector
from atlas.engine.metrics import MetricLogger, gpu_memory_peaks
from atlas.engine.oom import halve
from atlas.engine.optim import build_optimizer, build_param_groups
from atlas.engine.precision import autocast_factory
from atlas.engine.run_folder import resolve_resume, setup_logging
from atlas.engine.schedules import apply_learning_rate, learning_rate_at
from atlas.engine.signals import StopRequest
from atlas.engine.strategy import Strategy, build_strategy
from atlas.engine.watchdog import Watchdog
from atlas.errors import AtlasError
from atlas.models.pretrained import initialise_from_pretrained
from atlas.models.registry import build_policy
from atlas.planning.batch import plan_batch

TRAINER_STATE = "trainer_state.json"


@dataclass
class TrainerState:
    """What a checkpoint must hold besides tensors to continue exactly."""

    step: int = 0
    samples_seen: int = 0
    micro_batch_size: int = 0
    gradient_accumulation_steps: int = 0
    world_size: int = 1
    effective_batch_size: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    nonfinite_in_a_row: int = 0


class NonFiniteError(AtlasError, RuntimeError):
    pass


# --------------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------------
def command(args) -> int:
    """`atlas train` (from atlas/cli.py)."""
    if args.nproc and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_torchrun(args)
    init_from = [f"model.pretrained={args.init_from}"] if getattr(args, "init_from", None) else []  # --init-from
    cfg = load_config(args.config, [*args.overrides, *init_from], profile=args.profile)
    output_dir = args.output_dir or str(Path("runs") / Path(args.config).stem)
    train(cfg, output_dir, resume=args.resume)
    return 0


def _launch_torchrun(args) -> int:
    forwarded = [a for a in sys.argv[1:] if not a.startswith("--nproc")]
    if forwarded and forwarded[0] == "train":
        forwarded = forwarded[1:]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.nproc}", "-m", "atlas.train", *forwarded]
    print("[atlas] launching: " + " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    from atlas.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


def train(cfg: AtlasConfig, output_dir: str | Path, resume: str | None = None) -> dict:
    D.check_launch_environment()
    ctx = D.init_distributed()
    clean = False
    try:
        summary = _train(cfg, Path(output_dir), resume, ctx)
        clean = True
        return summary
    finally:
        D.shutdown(ctx, clean)


# --------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------
def _train(cfg: AtlasConfig, run_dir: Path, resume: str | None, ctx: D.DistContext) -> dict:
    tc = cfg.training
    log = setup_logging(run_dir, ctx.is_main)
    print(f"Distributed training: world_size={ctx.world_size}, rank={ctx.rank}", file=sys.stderr, flush=True)

    # 1. What to resume (rank 0 decides, everyone follows).
    resume_path = resolve_resume(run_dir, resume, log.warning) if ctx.is_main else None
    resume_path = D.broadcast_object(str(resume_path) if resume_path else None, ctx)
    state = TrainerState()
    if resume_path:
        state = TrainerState(**json.loads((Path(resume_path) / TRAINER_STATE).read_text()))

    # 2. The batch plan: micro-batch × world × accumulation = effective batch (kept across resumes).
    _adopt_launcher_precision(cfg, log)
    memory_plan = _fit_to_gpu(cfg, ctx, log, apply=not resume_path) if ctx.device.type == "cuda" else None
    micro = state.micro_batch_size or cfg.data.batch_size
    plan = plan_batch(tc, micro, ctx.world_size, effective_batch_size=state.effective_batch_size or None)
    if resume_path and state.world_size != ctx.world_size:
        log.warning(
            f"resuming a {state.world_size}-process run on {ctx.world_size}: effective batch stays "
            f"{plan.effective_batch_size}, accumulation {state.gradient_accumulation_steps}→{plan.gradient_accumulation_steps}"
        )
    log.info(plan.arithmetic())
    log.info(f"learning rate {plan.learning_rate:.3g} (base {plan.base_learning_rate:.3g}, lr_scaling={plan.lr_scaling}, "
             f"base batch {plan.base_batch_size})")

    # 3. Components, each from its own config section.
    _seed_everything(tc.seed)
    data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, tc.seed, plan.effective_batch_size)
    for line in data.log_lines:
        log.info(line)
    mo = cfg.memory_optimization
    strategy = build_strategy(tc, mo, ctx, plan.micro_batch_size, plan.gradient_accumulation_steps, log)
    policy = build_policy(cfg.model, data.meta, data.normalizer, gradient_checkpointing=mo.gradient_checkpointing,
                          memory_efficient_attention=mo.memory_efficient_attention).to(ctx.device)
    _, group_lines = build_param_groups(policy, tc.lr_multipliers, tc.weight_decay)  # freezes multiplier-0 modules
    for line in group_lines:
        log.info(line)
    num_params, num_trainable = policy.num_parameters(), policy.num_parameters(True)  # before ZeRO-3 empties them
    log.info(f"policy {cfg.model.preset}: {num_params:,} params, {num_trainable:,} trainable")
    if resume_path:  # into the whole policy, before the strategy shards or partitions it
        policy.load_state_dict(load_weights(Path(resume_path) / "model.safetensors", str(ctx.device)))
    pretrained = initialise_from_pretrained(policy, cfg.model, cfg.data.stats, data, log, resumed_from=resume_path)

    def make_optimizer() -> torch.optim.Optimizer:  # over the parameters the strategy leaves (FSDP: DTensors)
        groups, _ = build_param_groups(policy, tc.lr_multipliers, tc.weight_decay)
        return build_optimizer(groups, plan.learning_rate, tc.adam_betas, tc.adam_eps, strategy.fused_optimizer)

    model, optimizer = strategy.setup(policy, make_optimizer)
    log.info(f"strategy: {strategy.label} over {ctx.world_size} process(es)")
    # built from the strategy's parameters: sharded alike (FSDP shards, ZeRO-3 partitions)
    ema = EMA(policy, tc.ema, strategy.local_tensor) if tc.ema.enabled else None
    if ctx.distributed:  # what each rank holds: the tests read these lines to see the layout
        held, total = strategy.held(strategy.local_state(policy))
        print(f"weights on rank {ctx.rank}: {held} of {total} elements ({strategy.name})", file=sys.stderr, flush=True)
    if ema is not None and ctx.distributed:
        held, total = strategy.held(ema.state_dict())
        print(f"EMA on rank {ctx.rank}: {held} of {total} elements ({strategy.name})", file=sys.stderr, flush=True)
    scaler = strategy.grad_scaler()
    trainable = [p for p in policy.parameters() if p.requires_grad]
    store = CheckpointStore(run_dir / "checkpoints", tc.checkpoints_total_limit)
    manual_sync = mo.dynamic_batch_size and ctx.distributed  # see _sync_gradients (DDP only: build_strategy)

    if resume_path:
        _load_checkpoint(Path(resume_path), strategy, policy, ema, optimizer, scaler, ctx)
        log.info(f"resumed from {resume_path} at step {state.step}")
    else:
        torch.manual_seed(tc.seed + 1000 * ctx.rank)  # per-rank noise/dropout; weights already built
    state.micro_batch_size, state.gradient_accumulation_steps = plan.micro_batch_size, plan.gradient_accumulation_steps
    state.world_size, state.effective_batch_size = ctx.world_size, plan.effective_batch_size
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, run_dir / "config.yaml")
        plan_record = {**plan.to_dict(), "profile": cfg.profile, "device": str(ctx.device),
                       "num_parameters": num_params, "trainable_parameters": num_trainable,
                       "samples_per_epoch": len(data.train),
                       "steps_per_epoch": math.ceil(len(data.train) / plan.effective_batch_size),
                       "memory_plan": memory_plan, "pretrained": pretrained}
        (run_dir / "plan.json").write_text(json.dumps(plan_record, indent=2))
    injector = FaultInjector(ctx.rank)  # ATLAS_INJECT_* hooks, the loss-term watch, the step clock
    injector.attach(policy)
    watchdog = Watchdog(tc.hang_timeout_s, injector, log).start()

    stream = SampleStream(len(data.train), tc.seed, cfg.data.sampling, data.train.episode_ranges)
    batches = StepBatches(data.train, stream, plan.micro_batch_size, plan.gradient_accumulation_steps,
                          ctx.world_size, ctx.rank, state.samples_seen, cfg.data_loading,
                          pin_memory=ctx.device.type == "cuda")
    transform = data.transform
    metrics = MetricLogger(run_dir, ctx.is_main, cfg.logging.tensorboard,
                           {"project": cfg.logging.wandb_project, "mode": cfg.logging.wandb_mode} if cfg.logging.wandb else None)
    autocast = autocast_factory(ctx.device, tc.mixed_precision)
    log.info(f"samples per epoch {len(data.train)}, steps per epoch {math.ceil(len(data.train) / plan.effective_batch_size)}, "
             f"training steps {state.step + 1}..{tc.max_steps}")

    bar = _progress_bar(cfg, ctx, state.step, tc.max_steps)
    window = {"loss_sum": torch.zeros((), device=ctx.device), "valid": torch.zeros((), device=ctx.device),
              "steps": 0, "start": time.perf_counter(), "grad_norm": torch.zeros((), device=ctx.device)}
    last_loss = float("nan")
    stop = StopRequest().install()
    stopped = False
    model.train()

    # 4. Steps.
    while state.step < tc.max_steps:
        step = state.step + 1
        injector.current_step = step
        micro_batches = batches.next_step()
        lr = learning_rate_at(step, plan.learning_rate, tc.lr_scheduler, tc.warmup_steps, tc.max_steps, tc.min_lr)
        apply_learning_rate(optimizer, lr)

        while True:  # redo the same samples with a smaller micro-batch after an out-of-memory error
            oom, stopped = _accumulate(model, micro_batches, transform, autocast, scaler, ctx, window,
                                       catch_oom=mo.dynamic_batch_size, manual_sync=manual_sync,
                                       stop_requested=stop.requested(step), strategy=strategy)
            if not oom:
                break
            optimizer.zero_grad(set_to_none=True)
            new_micro, new_acc, message = halve(batches.micro, batches.accumulation, step)
            log.warning(message)
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
            micro_batches = resplit(micro_batches, new_micro)
            batches.reset(new_micro, new_acc, batches.position)
            state.micro_batch_size, state.gradient_accumulation_steps = new_micro, new_acc

        if manual_sync:
            _sync_gradients(trainable, ctx)
        grad_norm, finite = strategy.step(trainable, optimizer, scaler, tc.max_grad_norm)
        if finite:
            state.nonfinite_in_a_row = 0
            if ema is not None:
                ema.update(policy, step)
        else:
            _skip_nonfinite_step(step, state, injector, scaler, optimizer, store, tc.max_nonfinite_steps, ctx, log,
                                 watchdog)
        state.step = step
        state.samples_seen = batches.position
        window["grad_norm"] += grad_norm.detach().float() if finite else 0.0
        if not stopped and not ctx.distributed and stop.requested(step):  # a signal during this step: stop now
            stopped = True
        window["steps"] += 1

        if step % tc.log_interval == 0 or step == tc.max_steps:
            last_loss = _log_window(window, step, lr, optimizer, plan.effective_batch_size, metrics, ctx, bar, stream)
        if bar is not None:
            bar.update(1)

        val_loss = None
        if tc.val_interval and data.val is not None and (step % tc.val_interval == 0 or step == tc.max_steps):
            val_loss = _validate(policy, data.val, transform, autocast, plan.micro_batch_size, tc.val_batches, ctx,
                                 strategy)
            metrics.log({"val_loss": val_loss}, step)
            log.info(f"step {step}: val_loss {val_loss:.5f}")
        success = None
        if cfg.eval.every_n_steps and (step % cfg.eval.every_n_steps == 0 or step == tc.max_steps):
            success = _evaluate_in_sim(cfg, policy, ema, strategy, data, step, metrics, ctx, log)
        # best follows the lowest val_loss, or the highest success rate (eval.select_best_by)
        score = (None if success is None else -success) if cfg.eval.select_best_by == "success_rate" else val_loss
        is_best = score is not None and (state.best_metric is None or score < state.best_metric)
        if is_best:
            state.best_metric, state.best_step = score, step
        if step % tc.checkpoint_interval == 0 or step == tc.max_steps or is_best or stopped:
            path = _save_checkpoint(store, step, strategy, policy, ema, optimizer, scaler, state, cfg, ctx,
                                    best=is_best)
            if path is not None:
                log.info(f"checkpoint {path}" + (" (best)" if is_best else ""))
        if stopped:
            log.warning(f"stop requested ({stop.reason or 'by another rank'}): stopped after step {step}; "
                        f"checkpoint {store.pointer('latest')}; continue with --resume auto")
            break

    stop.uninstall()
    watchdog.stop()
    batches.close()
    if bar is not None:
        bar.close()
    metrics.close()
    by_success = cfg.eval.select_best_by == "success_rate"
    best_value = None if state.best_metric is None else (-state.best_metric if by_success else state.best_metric)
    summary = {"final_step": state.step, "final_loss": None if math.isnan(last_loss) else last_loss, f"best_{cfg.eval.select_best_by}": best_value,
               "best_step": state.best_step, "run_dir": str(run_dir), "stopped": stopped,
               "micro_batch_size": state.micro_batch_size, "gradient_accumulation_steps": state.gradient_accumulation_steps,
               "effective_batch_size": state.effective_batch_size, **gpu_memory_peaks(ctx.device)}
    log.info(f"done: {json.dumps(summary)}")
    return summary


# --------------------------------------------------------------------------------------------------
# pieces of a step
# --------------------------------------------------------------------------------------------------
def _accumulate(model, micro_batches, transform, autocast, scaler, ctx, window, catch_oom: bool, manual_sync: bool,
                stop_requested: bool, strategy: Strategy) -> tuple[bool, bool]:
    """Forward/backward every micro-batch of the step; returns (any rank out of memory, any rank asked to stop).

    The stop flag rides on the all-reduce of the valid-element count, so ranks agree at no extra cost.

    Each micro-batch contributes loss_sum × world_size / (valid elements of the effective batch): DDP, FSDP
    and ZeRO all average gradients over ranks, so the sum over ranks and micro-batches is the large-batch mean.
    """
    counts = torch.tensor([float(sum(valid_elements(mb) for mb in micro_batches)), float(stop_requested)],
                          device=ctx.device)
    counts = D.all_reduce_sum(counts, ctx)
    total_valid, stop_any = counts[:1].clamp_min(1.0), bool(counts[1].item() > 0)
    scale = ctx.world_size / total_valid
    oom = False
    step_loss = torch.zeros((), device=ctx.device)
    for i, micro_batch in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        try:
            with strategy.sync(model, enabled=last and not manual_sync), autocast():
                out = model(transform(micro_batch, ctx.device, train=True))
                loss = out["loss_sum"].float() * scale
            strategy.backward(model, loss, scaler)
            step_loss += out["loss_sum"].detach().float()
        except torch.OutOfMemoryError:
            if not catch_oom:
                raise
            oom = True
            break
    if catch_oom:
        flag = D.all_reduce_sum(torch.tensor([float(oom)], device=ctx.device), ctx)
        oom = bool(flag.item() > 0)
    if not oom:
        # a non-finite step (skipped by the caller) stays out of the logged loss, so metrics.jsonl never holds NaN
        ok = torch.isfinite(step_loss)
        window["loss_sum"] += torch.where(ok, step_loss, torch.zeros_like(step_loss))
        window["valid"] += torch.where(ok, total_valid.squeeze() / ctx.world_size, torch.zeros_like(step_loss))
    return oom, stop_any


def _skip_nonfinite_step(step, state, injector, scaler, optimizer, store, max_nonfinite_steps, ctx, log, watchdog) -> None:
    """Drop a step whose loss or gradients are not finite: name the loss terms (agreed across ranks), count
    fp16 scaler overflows apart, and stop with the last good checkpoint after too many in a row."""
    bad_terms = injector.nonfinite_terms()
    bad_loss = D.all_reduce_sum(torch.tensor([float(bool(bad_terms))], device=ctx.device), ctx).item() > 0
    scale = scaler.get_scale() if scaler is not None else None
    if scaler is not None:
        scaler.update()  # lowers the scale after inf/NaN; clears this step's unscale_ record
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and not bad_loss:  # finite losses, overflowing fp16 gradients: the scaler's own skip
        injector.scaler_skips += 1
        log.info(f"fp16 grad scaler: gradients overflowed at step {step}, update skipped, scale "
                 f"{scale:g}->{scaler.get_scale():g} ({injector.scaler_skips} scaler skips so far)")
    else:
        state.nonfinite_in_a_row += 1
        what = f"loss terms: {', '.join(bad_terms)}" if bad_terms else (
            "loss terms: on another rank" if bad_loss else "gradients; every loss term finite")
        log.warning(f"non-finite loss/gradients at step {step} ({what}); update skipped "
                    f"({state.nonfinite_in_a_row} in a row, limit training.max_nonfinite_steps="
                    f"{max_nonfinite_steps})")
        if state.nonfinite_in_a_row >= max_nonfinite_steps:
            latest = store.pointer("latest")
            message = (f"{state.nonfinite_in_a_row} non-finite steps in a row (last: step {step}, {what}); "
                       f"stopping. Last good checkpoint: {latest or 'none written yet'} (weights there "
                       "are from before the non-finite steps); lower the learning rate or check the data")
            log.error(message)
            watchdog.stop()
            raise NonFiniteError(message)


def _sync_gradients(params: list[torch.Tensor], ctx: D.DistContext) -> None:
    """One flat all-reduce of all gradients (dynamic batch sizing runs every micro-batch under no_sync, so
    that a rank that runs out of memory mid-backward never leaves the others waiting in DDP's reducer)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    D.all_reduce_sum(flat, ctx)
    flat /= ctx.world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def _log_window(window, step, lr, optimizer, effective_batch, metrics, ctx, bar, stream) -> float:
    """Metrics of the steps since the last log line; the only host sync of the loss."""
    totals = torch.stack([window["loss_sum"], window["valid"]]).float()
    D.all_reduce_sum(totals, ctx)
    elapsed = time.perf_counter() - window["start"]
    loss = (totals[0] / totals[1].clamp_min(1.0)).item()
    record = {
        "loss": loss,
        "lr": lr,
        "grad_norm": (window["grad_norm"] / max(1, window["steps"])).item(),
        "samples_per_s": window["steps"] * effective_batch / max(elapsed, 1e-9),
        "epoch": step * effective_batch / stream.num_samples,
        **gpu_memory_peaks(ctx.device),
    }
    for group in optimizer.param_groups:
        record[f"lr/{group['name']}"] = group["lr"]
    metrics.log(record, step)
    if bar is not None:
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", sps=f"{record['samples_per_s']:.0f}")
    window.update(loss_sum=torch.zeros_like(window["loss_sum"]), valid=torch.zeros_like(window["valid"]),
                  grad_norm=torch.zeros_like(window["grad_norm"]), steps=0, start=time.perf_counter())
    return loss


@torch.no_grad()
def _validate(policy, dataset, transform, autocast, micro, max_batches, ctx, strategy: Strategy) -> float:
    """Mean loss over valid elements of the held-out episodes, split across ranks and reduced.

    When a forward is a collective (FSDP, ZeRO-3), ranks with fewer batches repeat their first one, uncounted,
    until they have run as many forwards as rank 0 (which has the most)."""
    from torch.utils.data import DataLoader

    from atlas.data.collate import collate_samples

    policy.eval()
    batches = shard_sequential(len(dataset), micro, ctx.world_size, ctx.rank)[: max_batches or None]
    counted = len(batches)
    if strategy.collective_forward:
        most = len(shard_sequential(len(dataset), micro, ctx.world_size, 0)[: max_batches or None])
        batches += [batches[0] if batches else [0]] * (most - counted)
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate_samples, generator=torch.Generator())
    totals = torch.zeros(2, device=ctx.device)
    for i, batch in enumerate(loader):
        with autocast():
            out = policy(transform(batch, ctx.device, train=False))
        if i < counted:
            totals[0] += out["loss_sum"].float()
            totals[1] += out["num_valid"].float()
    D.all_reduce_sum(totals, ctx)
    policy.train()
    return (totals[0] / totals[1].clamp_min(1.0)).item()


def _evaluate_in_sim(cfg: AtlasConfig, policy, ema, strategy: Strategy, data, step, metrics, ctx, log) -> float | None:
    """A short closed-loop evaluation on rank 0 with the EMA weights (when kept); other ranks wait."""
    rate = None

    def fresh():  # an unsharded policy for rank 0 when the training one is sharded
        return build_policy(cfg.model, data.meta, data.normalizer)

    with strategy.evaluation_policy(policy, ema.state_dict() if ema is not None else None, fresh) as evaluated:
        if evaluated is not None:
            from atlas.sim import evaluate_policy

            ec = cfg.eval
            summary = evaluate_policy(evaluated, ec.tasks or data.meta.tasks, ec.episodes, ec.exec_horizon,
                                      ec.max_steps, obs_horizon=cfg.data.obs_horizon, seed=1000 + step, env=ec.env)
    if ctx.is_main:
        rate = float(summary["success_rate"])
        record = {"success_rate": rate}
        record.update({f"success_rate/{task}": row["success_rate"] for task, row in summary["tasks"].items()})
        metrics.log(record, step)
        log.info(f"step {step}: success_rate {rate:.3f} over {ec.episodes} episodes x {len(summary['tasks'])} task(s)")
    return D.broadcast_object(rate, ctx)


# --------------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------------
def _save_checkpoint(store, step, strategy: Strategy, policy, ema, optimizer, scaler, state, cfg, ctx,
                     best: bool) -> Path | None:
    """Every rank writes its RNG state into the temp folder and takes part in gathering the full weights,
    EMA and optimizer state (sharded under FSDP/ZeRO); rank 0 writes them and commits.

    A write error on any rank (disk full, unwritable folder) aborts the save on every rank: earlier
    checkpoints and `latest` stay as they were, and `training.on_save_error` stops or continues training."""
    failure = store.guarded_write(step, lambda: store.begin(step)) if ctx.is_main else None
    D.barrier(ctx)
    tmp = store.tmp_dir(step)

    def write_rng() -> None:
        (tmp / "rng").mkdir(exist_ok=True)
        torch.save(rng_state(), tmp / "rng" / f"rank_{ctx.rank}.pt")

    failure = failure or store.guarded_write(step, write_rng)
    any_failed = D.all_reduce_sum(torch.tensor([float(failure is not None)], device=ctx.device), ctx).item() > 0
    final = None
    if not any_failed:  # collectives: every rank or none
        weights = strategy.gather(strategy.local_state(policy))
        ema_weights = strategy.gather(ema.state_dict()) if ema is not None else None
        optimizer_state = strategy.optimizer_state(policy, optimizer)

    def write_main() -> None:
        nonlocal final
        policy.save_pretrained(tmp, state_dict=weights)
        if ema_weights is not None:
            policy.save_pretrained(tmp / "ema", state_dict=ema_weights)
        torch.save(optimizer_state, tmp / "optimizer.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        (tmp / "scheduler.json").write_text(json.dumps({
            "lr_scheduler": cfg.training.lr_scheduler, "step": step, "warmup_steps": cfg.training.warmup_steps,
            "max_steps": cfg.training.max_steps, "note": "the LR is a pure function of the step (atlas/engine/schedules.py)"}))
        (tmp / TRAINER_STATE).write_text(json.dumps(asdict(state), indent=2))
        shutil.copyfile(store.root.parent / "config.yaml", tmp / "config.yaml")  # rendered once at start
        final = store.commit(step, best=best)

    if ctx.is_main and not any_failed:
        failure = store.guarded_write(step, write_main)
    if ctx.is_main and (failure is not None or any_failed):
        store.abort(step)
    main_failure = D.broadcast_object(str(failure) if ctx.is_main and failure is not None else None, ctx)
    text = str(failure) if failure is not None else main_failure
    if text is None and any_failed:
        text = f"could not write checkpoint step {step}: a write failed on another rank (see its log)"
    if text is None:
        return final
    if cfg.training.on_save_error == "stop":
        raise SaveFailed(f"{text} Stopping (training.on_save_error=stop); free space, then --resume auto.")
    logging.getLogger("atlas").error(f"{text} Training continues (training.on_save_error=continue).")
    return None


def _load_checkpoint(path: Path, strategy: Strategy, policy, ema, optimizer, scaler, ctx) -> None:
    """EMA and optimizer state (the weights went into the whole policy before the strategy set it up):
    full tensors on disk, cut to this rank's layout. Weights come from safetensors, the rest with
    weights_only=True: an unusable or hostile file is a CheckpointError naming it (resolve_resume has
    already checked the manifest's sizes and checksums)."""
    if ema is not None and (path / "ema" / "model.safetensors").is_file():
        full = load_weights(path / "ema" / "model.safetensors", str(ctx.device))
        ema.load_state_dict(strategy.scatter(full, ema.state_dict()))
    strategy.load_optimizer_state(policy, optimizer, load_torch(path / "optimizer.pt"))
    if scaler is not None and (path / "scaler.pt").is_file():
        scaler.load_state_dict(load_torch(path / "scaler.pt"))
    rng_file = path / "rng" / f"rank_{ctx.rank}.pt"
    if rng_file.is_file():
        set_rng_state(load_torch(rng_file))
    else:  # a different world size: fresh, but deterministic, per-rank streams
        torch.manual_seed(zlib.crc32(f"{path.name}:{ctx.rank}".encode()))


# --------------------------------------------------------------------------------------------------
# fitting the hardware
# --------------------------------------------------------------------------------------------------
def _adopt_launcher_precision(cfg: AtlasConfig, log) -> None:
    """`accelerate launch --mixed_precision bf16` (seed 002) is the user's intent when the config says "no"."""
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    configured = cfg.training.mixed_precision
    if launcher in ("bf16", "fp16") and configured == "no":
        cfg.training.mixed_precision = launcher
        log.info(f"mixed precision {launcher} from `accelerate launch --mixed_precision` (config said no)")
    elif launcher in ("bf16", "fp16") and launcher != configured:
        log.warning(f"accelerate asked for {launcher} but training.mixed_precision={configured}; using the config")


def _fit_to_gpu(cfg: AtlasConfig, ctx: D.DistContext, log, apply: bool) -> dict | None:
    """Cap this process's CUDA memory at max_memory_usage and plan with the real GPU's size (the same
    planner as `atlas plan`); with auto_micro_batch the plan's micro-batch and memory savers are applied."""
    mo = cfg.memory_optimization
    torch.cuda.set_per_process_memory_fraction(mo.max_memory_usage, ctx.device)
    gib = torch.cuda.get_device_properties(ctx.device).total_memory / 2**30
    try:
        from atlas.planning.planner import make_plan

        plan = make_plan(cfg, gpus=ctx.world_size, gpu_memory_gb=gib)
    except Exception as err:  # noqa: BLE001 - planning must never stop a run the user configured by hand
        log.warning(f"memory planner failed ({err}); training with the configured micro-batch")
        return None
    record = plan.to_dict()
    log.info(f"planner: micro-batch up to {plan.micro_batch_size} fits {plan.budget_gb:.1f} GB "
             f"(checkpointing={plan.gradient_checkpointing}, efficient attention={plan.memory_efficient_attention})")
    if mo.auto_micro_batch and apply:
        cfg.data.batch_size = plan.micro_batch_size
        mo.gradient_checkpointing = plan.gradient_checkpointing
        mo.memory_efficient_attention = plan.memory_efficient_attention
        log.info(f"auto_micro_batch: micro-batch {plan.micro_batch_size}, accumulation {plan.gradient_accumulation_steps}")
    else:
        _judge_configured_micro_batch(cfg, ctx, gib, plan, record, log)
    return record


def _judge_configured_micro_batch(cfg: AtlasConfig, ctx: D.DistContext, gib: float, plan, record: dict, log) -> None:
    """The user's own micro-batch with the user's own memory options, predicted (into plan.json's
    `configured`) and warned about when it will not fit: the planner's choice may rely on checkpointing
    the config has off (seen on an H200: "up to 64 fits" with checkpointing, then a real OOM at 64 without)."""
    from atlas.planning.hardware import GIB
    from atlas.planning.planner import make_plan

    mo = cfg.memory_optimization
    try:
        mine = make_plan(cfg, gpus=ctx.world_size, gpu_memory_gb=gib, probe=plan.probe,
                         micro_batch_size=cfg.data.batch_size)
    except Exception as err:  # noqa: BLE001 - a judgement, never a reason to stop
        log.warning(f"could not predict data.batch_size={cfg.data.batch_size} on this GPU ({err})")
        return
    record["configured"] = {"micro_batch_size": cfg.data.batch_size, "memory": mine.memory.to_dict(), "fits": mine.fits}
    if not mine.fits:
        backoff = ("memory_optimization.dynamic_batch_size=true will halve it" if mo.dynamic_batch_size
                   else "set memory_optimization.dynamic_batch_size=true to back off")
        log.warning(f"data.batch_size={cfg.data.batch_size} needs ~{mine.memory.total / GIB:.1f} GiB with "
                    f"gradient_checkpointing={mo.gradient_checkpointing}, memory_efficient_attention="
                    f"{mo.memory_efficient_attention}, of the {plan.budget_gb:.1f} GB allowed (max_memory_usage): expect "
                    f"out-of-memory ({backoff}); the planner's choice here is micro-batch {plan.micro_batch_size} with "
                    f"checkpointing={plan.gradient_checkpointing} (memory_optimization.auto_micro_batch=true applies it)")


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _progress_bar(cfg: AtlasConfig, ctx: D.DistContext, start: int, total: int):
    if not (ctx.is_main and cfg.logging.progress_bar):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="Steps", dynamic_ncols=True, mininterval=1.0)


if __name__ == "__main__":
    sys.exit(main())
