"""`atlas collect` and `atlas eval`: turn parsed arguments into calls of `collect` and `evaluate_policy`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from atlas.config.errors import ConfigError


def collect(args: argparse.Namespace) -> int:
    from atlas.sim.collection import collect as run_collect
    from atlas.sim.collection import format_summary

    try:
        result = run_collect(
            tasks=args.tasks,
            episodes=args.episodes,
            out=args.out,
            image_size=args.image_size,
            cameras=args.cameras,
            seed=args.seed,
            workers=args.workers,
            overwrite=getattr(args, "overwrite", False),
            append=getattr(args, "append", False),
            out_format=args.out_format,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err
    print(format_summary(result))
    return 0


def _section(config: dict, name: str) -> dict:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _check_outputs(out: Path, video_dir: Path | None) -> None:
    from atlas.textfile import unwritable_reason

    reason = unwritable_reason(out)
    if reason:
        raise ConfigError(f"--out {out}: cannot write the results there: {reason}")
    if video_dir is not None:
        if video_dir.exists() and not video_dir.is_dir():
            raise ConfigError(f"--video-dir {video_dir} is a file, not a folder")
        reason = unwritable_reason(video_dir / "probe.mp4")
        if reason:
            raise ConfigError(f"--video-dir {video_dir}: cannot write videos there: {reason}")


def _tasks(args: argparse.Namespace, eval_cfg: dict, trained: list[str]) -> list[str] | str:
    """`--tasks`, else the config's `eval.tasks`, else the trained tasks; LIBERO adds `--benchmark`/`--num-tasks`."""
    if args.env == "libero":
        from atlas.sim.libero_env import select_tasks

        if args.benchmark or args.tasks:
            return select_tasks(args.benchmark, args.tasks, args.num_tasks)
        return select_tasks(None, eval_cfg.get("tasks") or trained, args.num_tasks)
    if args.benchmark:
        raise ConfigError(f"--benchmark names a LIBERO suite; it needs --env libero, not --env {args.env}")
    tasks = args.tasks or eval_cfg.get("tasks") or trained
    if not tasks:
        raise ConfigError("--tasks: the checkpoint names no tasks; pass --tasks T1,T2")
    return tasks[: args.num_tasks] if args.num_tasks and not isinstance(tasks, str) else tasks


def evaluate(args: argparse.Namespace) -> int:
    import torch

    from atlas.data.mixture_normalizer import dataset_tasks, select_dataset
    from atlas.sim.checkpoint import load_checkpoint
    from atlas.sim.envs import check_env
    from atlas.sim.evaluate import evaluate_policy, format_table
    from atlas.sim.rollout import RolloutSpec

    if args.env:
        check_env(args.env)  # before loading weights: a missing simulator is named at once
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_checkpoint(args.checkpoint, args.weights, device)
    policy, run_config = loaded.policy, loaded.run_config
    dataset = select_dataset(policy, args.dataset)  # a mixture-trained policy: whose statistics (default the first)
    eval_cfg, data_cfg = _section(run_config, "eval"), _section(run_config, "data")
    trained_env = eval_cfg.get("env") or "metaworld"
    args.env = args.env or ("libero" if args.benchmark else None) or trained_env
    check_env(args.env)
    if args.env != trained_env:  # the run's eval.* (tasks, step limit ...) were meant for another simulator
        eval_cfg = {}
    tasks = _tasks(args, eval_cfg, dataset_tasks(policy) or policy.meta.tasks)
    exec_horizon = args.exec_horizon or eval_cfg.get("exec_horizon") or min(8, policy.cfg.action_horizon)
    max_steps = args.max_steps or eval_cfg.get("max_steps")  # None: the env's own limit
    obs_horizon = int(data_cfg.get("obs_horizon") or getattr(policy, "obs_horizon", 1) or 1)
    out = Path(args.out) if args.out else loaded.directory / "eval.json"
    video_dir = Path(args.video_dir) if args.video_dir else out.parent / "videos"
    _check_outputs(out, video_dir if args.record_video else None)  # before the evaluation, not after it
    print(f"checkpoint {loaded.directory} ({loaded.weights_kind} weights: {loaded.weights.name}) on {device}"
          + (f", statistics of dataset {dataset}" if dataset else ""))
    try:
        spec = RolloutSpec(exec_horizon=exec_horizon, max_steps=max_steps, obs_horizon=obs_horizon, seed=args.seed,
                           env=args.env, record_video=args.record_video, video_dir=str(video_dir))
        summary = evaluate_policy(
            policy,
            tasks,
            args.episodes,
            spec,
            workers=args.workers,
            progress=True,
            # workers reload the folder as saved (its first dataset); another --dataset goes through a temp copy
            saved=(str(loaded.directory), str(loaded.weights)) if device == "cpu" and not args.dataset else None,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err
    summary.update(checkpoint=str(loaded.directory), weights=loaded.weights_kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(format_table(summary))
    print(f"wrote {out}")
    return 0
