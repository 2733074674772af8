"""Success rate of a policy in simulation, per task with Wilson 95% intervals.

`evaluate_policy` is what the training loop calls every `eval.every_n_steps` and what `atlas eval`
uses. Episodes are split into groups (one batched rollout each); with `workers > 1` the groups run in
spawned processes that load the policy from disk (a live policy is saved to a temporary folder first).
Episode i of a task always uses the same evaluation seed, whatever the worker count.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, replace

from atlas.sim.envs import parse_env_tasks
from atlas.sim.rollout import EpisodeResult, RolloutSpec, run_episodes
from atlas.sim.wilson import Z95, wilson_interval  # noqa: F401 - re-exported


def summarize(results: list[EpisodeResult], tasks: list[str], wall_time_s: float) -> dict:
    """The eval.json structure from per-episode results."""
    per_task = {}
    for task in tasks:
        rows = [r for r in results if r.task == task]
        n, k = len(rows), sum(r.success for r in rows)
        low, high = wilson_interval(k, n)
        per_task[task] = {
            "success_rate": k / n if n else 0.0,
            "episodes": n,
            "successes": k,
            "ci95_low": low,
            "ci95_high": high,
            "mean_episode_length": sum(r.length for r in rows) / n if n else 0.0,
            "max_steps": max((r.max_steps for r in rows), default=0),
        }
    return {
        "success_rate": sum(t["success_rate"] for t in per_task.values()) / max(len(per_task), 1),
        "tasks": per_task,
        "episodes": len(results),
        "mean_episode_length": sum(r.length for r in results) / max(len(results), 1),
        "wall_time_s": round(wall_time_s, 3),
        "per_episode": [asdict(r) for r in sorted(results, key=lambda r: (tasks.index(r.task), r.index))],
    }


def _groups(tasks: list[str], episodes: int, batch_envs: int) -> list[tuple[str, list[int]]]:
    """Rollout groups of at most `batch_envs` episodes of one task. Their make-up does not depend on
    the worker count (which only decides where each group runs), so the per-group sampling noise (rollout.py
    `sampling_seed`) and with it every episode's outcome are the same for any worker count."""
    size = max(1, min(batch_envs, episodes))
    return [(task, list(range(s, min(s + size, episodes)))) for task in tasks for s in range(0, episodes, size)]


_WORKER_POLICY = None


def _init_worker(directory: str, weights: str | None) -> None:
    import torch

    from atlas.models.base import Policy

    torch.set_num_threads(1)
    global _WORKER_POLICY
    _WORKER_POLICY = Policy.from_pretrained(directory, weights=weights)


def _run_group(job: tuple[str, list[int], RolloutSpec]) -> list[EpisodeResult]:
    task, indices, spec = job
    return run_episodes(_WORKER_POLICY, task, indices, spec)


def run_groups(
    policy,
    jobs: list[tuple[str, list[int], RolloutSpec]],
    workers: int,
    saved: tuple[str, str | None] | None = None,
    progress: bool = False,
) -> list[EpisodeResult]:
    """Run rollout groups here (workers <= 1) or in spawned processes that load `saved` (dir, weights)."""
    from tqdm import tqdm

    total = sum(len(indices) for _, indices, _ in jobs)
    bar = tqdm(total=total, desc="eval", unit="ep", disable=not progress)
    results: list[EpisodeResult] = []
    try:
        if workers <= 1:
            for task, indices, spec in jobs:
                results += run_episodes(policy, task, indices, spec)
                bar.update(len(indices))
            return results
        with tempfile.TemporaryDirectory(prefix="atlas-eval-") as tmp:
            if saved is None:
                policy.save_pretrained(tmp)
                saved = (tmp, None)
            # an executor, not multiprocessing.Pool: a worker that dies (e.g. the OOM killer) raises
            # BrokenProcessPool here instead of leaving its task unfinished and the run waiting forever
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                     initargs=saved) as pool:
                try:
                    for group in as_completed([pool.submit(_run_group, job) for job in jobs]):
                        results += group.result()
                        bar.update(len(results) - bar.n)
                except BrokenProcessPool as err:
                    raise RuntimeError(
                        f"an evaluation worker process died ({err}); check memory (dmesg) or run with --workers 1"
                    ) from err
        return results
    finally:
        bar.close()


def evaluate_policy(
    policy,
    tasks: str | Sequence[str],
    episodes: int,
    spec: RolloutSpec,
    workers: int = 1,
    batch_envs: int = 10,
    progress: bool = False,
    saved: tuple[str, str | None] | None = None,
) -> dict:
    """Closed-loop success rate of `episodes` per task, driven as `spec` says (exec horizon, step limit,
    observation history, first seed, environment, videos); returns the eval.json structure (see `summarize`).

    `saved` = (checkpoint folder, weights file) lets worker processes load the weights straight from a
    checkpoint instead of a temporary copy of `policy`.
    """
    env, exec_horizon, max_steps, obs_horizon, seed = spec.env, spec.exec_horizon, spec.max_steps, spec.obs_horizon, spec.seed
    if spec.video_dir is not None and not isinstance(spec.video_dir, str):
        spec = replace(spec, video_dir=str(spec.video_dir))
    task_list = parse_env_tasks(env, list(tasks) if not isinstance(tasks, str) else tasks)
    jobs = [(task, indices, spec) for task, indices in _groups(task_list, episodes, batch_envs)]
    start = time.perf_counter()
    results = run_groups(policy, jobs, workers, saved, progress)
    summary = summarize(results, task_list, time.perf_counter() - start)
    summary.update(
        env=env,
        exec_horizon=min(exec_horizon, int(policy.cfg.action_horizon)),
        max_steps=max_steps,
        obs_horizon=obs_horizon,
        seed=seed,
        workers=workers,
    )
    return summary


def format_table(summary: dict, reference: dict[str, float] | None = None) -> str:
    """Plain-text table: success and 95% interval per task (and a reference rate, e.g. the expert's)."""
    ref_head = f" {'expert':>7}" if reference else ""
    width = max([30, *(len(task) for task in summary["tasks"])])
    lines = [f"{'task':<{width}} {'success':>8} {'n':>4} {'95% CI':>15} {'length':>7}{ref_head}"]
    for task, row in summary["tasks"].items():
        ci = f"[{row['ci95_low']:.2f}, {row['ci95_high']:.2f}]"
        ref = ""
        if reference:
            ref = f" {reference[task]:>7.0%}" if task in reference else f" {'-':>7}"
        lines.append(
            f"{task:<{width}} {row['success_rate']:>8.0%} {row['episodes']:>4} {ci:>15} {row['mean_episode_length']:>7.1f}{ref}"
        )
    lines.append(
        f"{'mean over tasks':<{width}} {summary['success_rate']:>8.0%} {summary['episodes']:>4} "
        f"{'':>15} {summary['mean_episode_length']:>7.1f}   ({summary['wall_time_s']:.1f} s)"
    )
    return "\n".join(lines)
