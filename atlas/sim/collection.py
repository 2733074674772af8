"""Scripted-expert demonstrations for Meta-World tasks, kept only when the expert succeeds.

Attempt k of a task always uses `episode_seed("collect", seed, task, k)`; a task keeps its first
`episodes` successful attempts in k order. Attempts run in rounds over worker processes, and every
attempt below the cut is always run, so the file does not depend on the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.sim.expert_fixes import CORRECTED_EXPERTS
from atlas.sim.seeding import episode_seed
from atlas.sim.tasks import INSTRUCTIONS, parse_tasks

_ENVS: dict = {}  # per-process cache: task -> (env, expert)
CONTROL_FPS = 80  # Meta-World steps per simulated second (frame_skip 5 x 2.5 ms): LeRobot's timestamps


def run_expert_episode(
    task: str, seed: int, cameras: Sequence[str], image_size: int, max_steps: int = 500
) -> dict:
    """One expert episode from `seed`; stops at the first success. Arrays are aligned per step."""
    from atlas.sim.metaworld_env import MetaWorldEnv, ScriptedExpert

    if task not in _ENVS:
        _ENVS[task] = (MetaWorldEnv(task), ScriptedExpert(task))
    env, expert = _ENVS[task]
    max_steps = min(max_steps, env.max_steps)
    state = env.reset(seed)
    states, actions, rewards, successes = [], [], [], []
    images: dict[str, list[np.ndarray]] = {cam: [] for cam in cameras}
    for _ in range(max_steps):
        for cam in cameras:
            images[cam].append(env.render(cam, image_size))
        action = expert(state)
        states.append(state)
        actions.append(action)
        result = env.step(action)
        rewards.append(result.reward)
        successes.append(result.success)
        state = result.state
        if result.success:
            break
    length = len(actions)
    dones = np.zeros(length, dtype=np.uint8)
    dones[-1] = 1
    return {
        "task": task,
        "instruction": INSTRUCTIONS[task],
        "seed": int(seed),
        "ok": bool(successes[-1]),
        "state": np.stack(states).astype(np.float32),
        "actions": np.stack(actions).astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "dones": dones,
        "success": np.asarray(successes, dtype=np.uint8),
        "images": {cam: np.stack(frames) for cam, frames in images.items()},
    }


def _attempt(job: tuple) -> tuple[int, dict]:
    task, k, seed, cameras, image_size, max_steps = job
    return k, run_expert_episode(task, seed, cameras, image_size, max_steps)


def _env_args(tasks: list[str], image_size: int, cameras: list[str], seed: int, max_steps: int) -> dict:
    from importlib.metadata import version

    return {
        "env_name": "metaworld",
        "type": "metaworld",
        "env_kwargs": {
            "tasks": tasks,
            "image_size": image_size,
            "cameras": cameras,
            "seed": seed,
            "max_steps": max_steps,
            "goal_observable": True,
            "state_dim": 39,
            "action_dim": 4,
            "metaworld_version": version("metaworld"),
            "corrected_experts": sorted(set(tasks) & set(CORRECTED_EXPERTS)),
            "instructions": {t: INSTRUCTIONS[t] for t in tasks},
        },
    }


def collect(
    tasks: str | Sequence[str],
    episodes: int,
    out: str | Path,
    image_size: int = 64,
    cameras: str | Sequence[str] = ("corner2",),
    seed: int = 0,
    workers: int = 1,
    max_steps: int = 500,
    max_attempts: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    append: bool = False,
    out_format: str = "robomimic",
) -> dict:
    """Collect `episodes` successful expert demos per task into `out` (a writer of `atlas.data.writers`:
    robomimic HDF5, or a LeRobot v3.0 folder with `out_format="lerobot"`).

    An existing `out` is refused unless `overwrite` or `append`; episodes are written to a temporary file
    renamed over `out` only when the collection finished (see atlas/sim/collect_output.py).
    Returns {"tasks": {task: {"episodes", "tried", "expert_success_rate"}}, "frames" (all simulated,
    kept or not), "wall_time_s", "out"}.
    """
    from atlas.data.writers import open_writer
    from atlas.sim import collect_output as output

    out = Path(out)
    task_list = parse_tasks(tasks)
    camera_list = [c.strip() for c in cameras.split(",")] if isinstance(cameras, str) else list(cameras)
    camera_list = [c for c in camera_list if c]
    if episodes <= 0:
        raise ValueError("episodes must be positive")
    if image_size <= 0:
        raise ValueError(f"--image-size must be positive, got {image_size}")
    if append and out_format != "robomimic":
        raise ValueError(f"--append adds episodes to a robomimic HDF5 file; a {out_format} dataset is written "
                         "whole: collect into another --out")
    output.check_output(out, overwrite, append)
    check_cameras(task_list[0], camera_list)
    cap = max_attempts or 20 * episodes + 20
    env_args = _env_args(task_list, image_size, camera_list, seed, max_steps)
    previous = None
    if append:
        env_args = output.merged_env_args(output.existing_env_args(out), env_args, out)
        previous = out
    tmp = output.start_temporary(out, append)
    try:
        writer = open_writer(out_format, str(tmp), env_args=env_args, fps=CONTROL_FPS, append=append)
        job = _Job(task_list, episodes, camera_list, image_size, seed, workers, max_steps, cap)
        result = _collect_into(writer, job, progress)
        writer.close(output.merged_collection(previous, result["tasks"]) if previous else result["tasks"])
        output.finish(tmp, out)
    except BaseException:  # Ctrl-C and errors alike: the user's --out is as it was, no partial file is left
        if "writer" in locals() and hasattr(writer, "abort"):
            writer.abort()
        output.discard(tmp)
        raise
    return {**result, "out": str(out)}


def check_cameras(task: str, cameras: list[str]) -> None:
    """ValueError naming the unknown camera (and the valid ones) before any episode is simulated."""
    if not cameras:
        return
    from atlas.sim.metaworld_env import MetaWorldEnv, ScriptedExpert

    if task not in _ENVS:
        _ENVS[task] = (MetaWorldEnv(task), ScriptedExpert(task))
    known = _ENVS[task][0].camera_names
    unknown = [c for c in cameras if c not in known]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(f"--cameras: unknown camera {unknown[0]!r}; {hint}valid: {', '.join(known)}")


@dataclass(frozen=True)
class _Job:
    tasks: list[str]
    episodes: int
    cameras: list[str]
    image_size: int
    seed: int
    workers: int
    max_steps: int
    cap: int


def _collect_into(writer, job: _Job, progress: bool) -> dict:
    """The collection loop: rounds of attempts per task, the first `episodes` successes kept in k order."""
    from tqdm import tqdm

    task_list, episodes, camera_list, image_size = job.tasks, job.episodes, job.cameras, job.image_size
    seed, workers, max_steps, cap = job.seed, job.workers, job.max_steps, job.cap
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    run = pool.imap_unordered if pool else map
    summary: dict[str, dict] = {}
    frames = 0
    start = time.perf_counter()
    bar = tqdm(total=episodes * len(task_list), desc="collect", unit="demo", disable=not progress)
    try:
        for task in task_list:
            done: dict[int, dict] = {}
            next_k, kept, tried = 0, [], 0
            while len(kept) < episodes and next_k < cap:
                need = episodes - len(kept)
                count = min(max(need, workers), cap - next_k)
                jobs = [
                    (task, k, episode_seed("collect", seed, task, k), camera_list, image_size, max_steps)
                    for k in range(next_k, next_k + count)
                ]
                for k, episode in run(_attempt, jobs):
                    done[k] = episode
                # walk the attempts in k order: the cut does not depend on completion order
                for k in range(next_k, next_k + count):
                    episode = done.pop(k)
                    frames += len(episode["actions"])
                    if len(kept) >= episodes:
                        continue
                    tried = k + 1
                    if episode["ok"]:
                        kept.append(episode)
                        bar.update(1)
                next_k += count
                bar.set_postfix(task=task, tried=tried)
            for episode in kept:
                writer.add(episode)
            summary[task] = {
                "episodes": len(kept),
                "tried": tried,
                "expert_success_rate": round(len(kept) / max(tried, 1), 4),
            }
            if len(kept) < episodes:
                print(f"warning: {task}: only {len(kept)}/{episodes} successful episodes in {tried} attempts")
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
    wall = time.perf_counter() - start
    return {"tasks": summary, "frames": frames, "wall_time_s": round(wall, 2)}


def format_summary(result: dict) -> str:
    """Plain-text table of episodes kept and tried per task."""
    rows = [f"{'task':<30} {'kept':>5} {'tried':>6} {'expert':>7}"]
    for task, entry in result["tasks"].items():
        rows.append(f"{task:<30} {entry['episodes']:>5} {entry['tried']:>6} {entry['expert_success_rate']:>7.0%}")
    fps = result["frames"] / max(result["wall_time_s"], 1e-9)
    rows.append(f"{result['frames']} frames in {result['wall_time_s']:.1f} s ({fps:.0f} frames/s) -> {result['out']}")
    return "\n".join(rows)


def read_collection_summary(path: str | Path) -> dict:
    """The per-task tried/kept record stored in a collected file."""
    import h5py

    with h5py.File(path, "r") as f:
        return json.loads(f["data"].attrs["collection"])
