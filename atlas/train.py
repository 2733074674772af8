"""The Atlas training loop, readable top to bottom.

    atlas train --config FILE [--output-dir DIR] [--resume auto|PATH] [KEY=VALUE ...]
    python atlas/train.py --config FILE ...            (the seeds' own command)
    torchrun --nproc_per_node=N -m atlas.train --config FILE ...

config → run plan (atlas/planning/run_plan.py) → parts (atlas/loop/parts.py) → this loop → run folder.
One optimizer step = one effective batch (atlas/loop/step.py); logging, validation, evaluation and
checkpointing each decide whether the step is theirs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, "") and __name__ == "__main__":  # `python atlas/train.py`: import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch

from atlas.config import AtlasConfig, dump_config, load_config
from atlas.engine import distributed as D
from atlas.engine.checkpoint import TrainerState, read_schedule
from atlas.engine.finite import improves
from atlas.engine.host_memory import keep_freed_host_memory
from atlas.engine.metrics import gpu_memory_peaks
from atlas.engine.nonfinite import NonFiniteError  # noqa: F401 - raised from the loop; tests import it here
from atlas.engine.run_folder import resolve_resume, setup_logging
from atlas.engine.run_lock import hold_run_folder
from atlas.engine.schedules import schedule_change
from atlas.engine.signals import StopRequest
from atlas.engine.watchdog import Watchdog
from atlas.loop.evaluation import InTrainingEvaluation
from atlas.loop.parts import RunParts, build_run_parts
from atlas.loop.step import run_step
from atlas.loop.validation import Validator
from atlas.loop.window import MetricWindow
from atlas.planning.run_plan import Hardware, ResumedBatch, RunPlan, resolve_run_plan


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


def torchrun_command(argv: list[str], nproc: int) -> list[str]:
    """`atlas train --nproc N ...` as the torchrun command it starts: `--nproc N` and `--nproc=N` dropped."""
    forwarded, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            forwarded.append(arg)
    if forwarded and forwarded[0] == "train":
        forwarded = forwarded[1:]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m", "atlas.train", *forwarded]


def _launch_torchrun(args) -> int:
    cmd = torchrun_command(sys.argv[1:], args.nproc)
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
        with hold_run_folder(output_dir, enabled=ctx.is_main):  # a second run into the folder is refused
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
    resume_from, state = _resume_point(run_dir, resume, ctx, log)
    plan = _plan(cfg, ctx, state if resume_from else None, log)
    state.micro_batch_size, state.gradient_accumulation_steps = plan.micro_batch_size, plan.gradient_accumulation_steps
    state.world_size, state.effective_batch_size = ctx.world_size, plan.effective_batch_size
    parts = build_run_parts(cfg, plan, ctx, run_dir, resume_from, state, log)
    parts.plan = plan = plan.with_samples(len(parts.data.train))
    resumed_from_step = state.step if resume_from else None
    if resume_from:
        log.info(f"resumed from {resume_from} at step {state.step}")
        # the machine-readable record of where this process picked up (tests and `atlas doctor` read it)
        parts.metrics.log({"resumed_from_step": state.step, "checkpoint": str(resume_from)}, state.step)
        _warn_schedule_change(parts, resume_from, state.step + 1)
    _write_run_files(parts, run_dir)
    log.info(f"samples per epoch {plan.samples_per_epoch}, steps per epoch {plan.steps_per_epoch}, "
             f"training steps {state.step + 1}..{tc.max_steps}")
    if ctx.device.type == "cpu":  # the step's tensors live in host memory: keep it between steps (once the
        log.info(keep_freed_host_memory())  # run folder is accepted: a refused run writes nothing to it)

    bar = _progress_bar(cfg, ctx, state.step, tc.max_steps)
    window, validator, evaluation = MetricWindow(parts, bar), Validator(parts), InTrainingEvaluation(parts)
    stop = StopRequest().install()
    watchdog = Watchdog(tc.hang_timeout_s, parts.clock, log).start()
    stopped, loop_start, loop_cpu = False, time.perf_counter(), time.process_time()
    parts.model.train()
    try:
        while state.step < tc.max_steps and not stopped:
            step = state.step + 1
            last = step == tc.max_steps
            with parts.timers.phase("step"):
                result = run_step(parts, state, step, stop.requested(step))
            # a signal during this step, seen by one process alone (several agree on the step's all-reduce)
            stopped = result.stop or (not ctx.distributed and stop.requested(step))
            window.add(result, step)
            if window.due(step, last):
                window.flush(step, result.lr)
            val_loss = validator.run(step) if validator.due(step, last) else None
            success = evaluation.run(step) if evaluation.due(step, last) else None
            is_best = _track_best(state, cfg.eval.select_best_by, val_loss, success)
            parts.checkpointer.poll()  # a background save that has landed is logged (or its failure handled) now
            if parts.checkpointer.due(step, last, is_best, stopped):
                with parts.timers.phase("checkpoint"):  # the weights' finiteness check is part of the save's cost
                    parts.guard.check_weights(parts.policy, step, parts.checkpointer.store.pointer("latest"))
                    path = parts.checkpointer.save(step, state, best=is_best)
                if path is not None:
                    log.info(f"checkpoint {path}" + (" (best)" if is_best else ""))
            if stopped:
                parts.checkpointer.wait()
                log.warning(f"stop requested ({stop.reason or 'by another rank'}): stopped after step {step}; "
                            f"checkpoint {parts.checkpointer.store.pointer('latest')}; continue with --resume auto")
        parts.checkpointer.wait()  # an asynchronous save still in flight: committed before the run returns
    finally:
        parts.timers.record("loop", time.perf_counter() - loop_start)  # the whole step loop (benchmarks read it)
        parts.timers.record("loop_cpu", time.process_time() - loop_cpu)  # its CPU time, every thread of the process
        stop.uninstall()
        watchdog.stop()
        parts.batches.close()
        if bar is not None:
            bar.close()
        parts.metrics.close()
    return _summary(parts, state, window.last_loss, stopped, run_dir, resumed_from_step)


# --------------------------------------------------------------------------------------------------
# the loop's helpers
# --------------------------------------------------------------------------------------------------
def _resume_point(run_dir: Path, resume: str | None, ctx: D.DistContext, log) -> tuple[Path | None, TrainerState]:
    """What to resume (rank 0 decides, everyone follows) and its trainer state."""
    resume_path = resolve_resume(run_dir, resume, log.warning) if ctx.is_main else None
    resume_path = D.broadcast_object(str(resume_path) if resume_path else None, ctx)
    if not resume_path:
        return None, TrainerState()
    return Path(resume_path), TrainerState.read(Path(resume_path))


def _plan(cfg: AtlasConfig, ctx: D.DistContext, resumed: TrainerState | None, log) -> RunPlan:
    """The run plan on this hardware (the same function `atlas plan` and `atlas doctor` call)."""
    batch = None
    if resumed is not None:
        batch = ResumedBatch(resumed.micro_batch_size, resumed.gradient_accumulation_steps, resumed.world_size,
                             resumed.effective_batch_size)
    if ctx.device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(cfg.memory_optimization.max_memory_usage, ctx.device)
    plan = resolve_run_plan(cfg, Hardware.of_this_process(ctx.device, ctx.world_size), batch)
    for line in plan.notes:
        log.info(line)
    for line in plan.warnings:
        log.warning(line)
    log.info(plan.arithmetic())
    log.info(plan.learning_rate_line())
    return plan


def _warn_schedule_change(parts: RunParts, checkpoint: Path, next_step: int) -> None:
    message = schedule_change(read_schedule(checkpoint), parts.checkpointer.settings.schedule, next_step)
    if message:
        parts.log.warning(message)


def _write_run_files(parts: RunParts, run_dir: Path) -> None:
    """config.yaml (the config with the plan's decisions written in) and plan.json (the plan alone)."""
    if not parts.ctx.is_main:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(parts.plan.resolved_config(parts.cfg), run_dir / "config.yaml")
    record = {**parts.plan.to_dict(), "device": str(parts.ctx.device), "num_parameters": parts.num_parameters,
              "trainable_parameters": parts.trainable_parameters, "pretrained": parts.pretrained}
    (run_dir / "plan.json").write_text(json.dumps(record, indent=2))


def _track_best(state: TrainerState, select_best_by: str, val_loss: float | None, success: float | None) -> bool:
    """Best follows the lowest val_loss, or the highest success rate (eval.select_best_by); never a NaN."""
    score = (None if success is None else -success) if select_best_by == "success_rate" else val_loss
    if not improves(score, state.best_metric):
        return False
    state.best_metric, state.best_step = score, state.step
    return True


def _summary(parts: RunParts, state: TrainerState, last_loss: float, stopped: bool, run_dir: Path,
             resumed_from_step: int | None) -> dict:
    """What the run did, returned by `train()` and logged as train.log's `done:` line; `resumed_from_step` is
    the checkpoint's step this process continued from (None for a fresh start)."""
    by = parts.cfg.eval.select_best_by
    best = None if state.best_metric is None else (-state.best_metric if by == "success_rate" else state.best_metric)
    summary = {"final_step": state.step, "final_loss": None if math.isnan(last_loss) else last_loss,
               f"best_{by}": best, "best_step": state.best_step, "run_dir": str(run_dir), "stopped": stopped,
               "resumed_from_step": resumed_from_step,
               "micro_batch_size": state.micro_batch_size,
               "gradient_accumulation_steps": state.gradient_accumulation_steps,
               "effective_batch_size": state.effective_batch_size,
               "time_s": {k: round(v, 3) for k, v in parts.timers.totals.items()},
               **gpu_memory_peaks(parts.ctx.device)}
    parts.log.info(f"done: {json.dumps(summary)}")
    return summary


def _progress_bar(cfg: AtlasConfig, ctx: D.DistContext, start: int, total: int):
    if not (ctx.is_main and cfg.logging.progress_bar):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="Steps", dynamic_ncols=True, mininterval=1.0)


if __name__ == "__main__":
    sys.exit(main())
