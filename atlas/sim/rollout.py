"""Closed-loop rollouts of one policy over several environments in lockstep (one batched forward).

Each env executes `exec_horizon` actions of a predicted chunk before the policy predicts again, so the
cameras are rendered only at steps whose frame the policy will look at (the last `obs_horizon` steps
before a prediction) unless a video is being recorded. Observation history before t=0 repeats the
first frame, as in training (`StepDataset`). The policy's sampling noise is seeded from the episodes it
predicts for (`sampling_seed`), so an evaluation repeats exactly for the same episodes and groups.
"""

from __future__ import annotations

import contextlib
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.sim.envs import make_env
from atlas.sim.seeding import episode_seed
from atlas.sim.video import video_name, write_mp4

# (env, slot) -> (task, env): reused across batches of the same task; an env of another task is closed
# first, so a worker holds at most one batch of envs (and their renderers) at a time.
_ENV_CACHE: dict[tuple[str, int], tuple[str, object]] = {}


@contextlib.contextmanager
def sampling_seed(episode_seeds: list[int], steps: list[int], policy) -> Iterator[None]:
    """The policy's sampling noise (flow/diffusion heads draw it from torch's RNG) as a function of the
    asking episodes and their step counts, inside a forked RNG: the same episodes give the same actions in
    any process and run (an in-process evaluation no longer depends on what the process drew before),
    and the caller's RNG stream (a training run evaluating as it trains) is left as it was."""
    import torch

    device = getattr(policy, "device", torch.device("cpu"))
    with torch.random.fork_rng(devices=[device] if getattr(device, "type", "cpu") == "cuda" else []):
        torch.manual_seed(zlib.crc32(repr((episode_seeds, steps)).encode()))
        yield


@dataclass
class RolloutSpec:
    """What a policy expects to see and how it is driven."""

    exec_horizon: int
    max_steps: int | None  # None: the env's own limit (Meta-World 500, LIBERO per suite)
    obs_horizon: int = 1
    seed: int = 1000
    env: str = "metaworld"
    record_video: bool = False
    video_dir: str | None = None
    video_size: int = 128


@dataclass
class EpisodeResult:
    task: str
    index: int
    seed: int
    success: bool
    length: int
    video: str | None = None
    max_steps: int = 0  # the step limit this episode ran under


def _env(name: str, task: str, slot: int):
    cached = _ENV_CACHE.get((name, slot))
    if cached is not None and cached[0] == task:
        return cached[1]
    if cached is not None:
        cached[1].close()
    env = make_env(name, task)
    _ENV_CACHE[(name, slot)] = (task, env)
    return env


def _padded(history: deque, length: int) -> list:
    items = list(history)
    return [items[0]] * (length - len(items)) + items


def run_episodes(policy, task: str, indices: list[int], spec: RolloutSpec) -> list[EpisodeResult]:
    """Run episodes `indices` of `task` together; returns one result per index, in order."""
    meta = policy.meta
    cameras = list(meta.cameras)
    height, width = meta.image_size if meta.image_size else (0, 0)
    horizon = max(1, int(spec.obs_horizon))
    exec_h = max(1, min(int(spec.exec_horizon), int(policy.cfg.action_horizon)))
    envs = [_env(spec.env, task, slot) for slot in range(len(indices))]
    data_task = getattr(envs[0], "data_task", task)  # LIBERO: `libero_90/<name>` was trained as `<name>`
    instruction = meta.instructions.get(data_task) or getattr(envs[0], "instruction", None) or task
    task_index = meta.tasks.index(data_task) if data_task in meta.tasks else -1
    env_limit = min(int(e.max_steps) for e in envs)
    max_steps = min(int(spec.max_steps), env_limit) if spec.max_steps else env_limit
    seeds = [episode_seed("eval", spec.seed, task, i) for i in indices]
    video_camera = cameras[0] if cameras else getattr(envs[0], "video_camera", "corner2")

    def look(env) -> np.ndarray:
        return np.stack([env.render(cam, height, width).transpose(2, 0, 1) for cam in cameras])

    states = [deque([env.reset(seed, episode=i)], maxlen=horizon) for env, seed, i in zip(envs, seeds, indices)]
    if int(meta.state_dim) != len(states[0][0]):
        raise ValueError(f"{spec.env} {task}: the env's state has {len(states[0][0])} numbers, the policy was trained on "
                         f"{meta.state_dim}; train on the state this env gives (see the env's module docstring)")
    frames = [deque([look(env)], maxlen=horizon) if cameras else None for env in envs]
    videos = [[env.render(video_camera, spec.video_size)] if spec.record_video else None for env in envs]
    queues: list[list[np.ndarray]] = [[] for _ in envs]
    steps = [0] * len(envs)
    success = [False] * len(envs)
    active = list(range(len(envs)))
    while active:
        asking = [i for i in active if not queues[i]]
        if asking:
            obs = {
                "state": np.stack([np.stack(_padded(states[i], horizon)) for i in asking]).astype(np.float32),
                "task_index": np.full(len(asking), task_index, dtype=np.int64),
            }
            if cameras:
                obs["images"] = np.stack([np.stack(_padded(frames[i], horizon)) for i in asking])
            with sampling_seed([seeds[i] for i in asking], [steps[i] for i in asking], policy):
                chunk = policy.predict_action_chunk(obs, [instruction] * len(asking))
            chunk = chunk.detach().float().cpu().numpy()
            for row, i in enumerate(asking):
                queues[i] = list(chunk[row, :exec_h])
        for i in list(active):
            result = envs[i].step(queues[i].pop(0))
            steps[i] += 1
            states[i].append(result.state)
            if result.success or steps[i] >= max_steps:
                success[i] = result.success
                active.remove(i)
            elif cameras and (len(queues[i]) < horizon):
                frames[i].append(look(envs[i]))  # the policy looks at this frame at its next prediction
            if videos[i] is not None:
                videos[i].append(envs[i].render(video_camera, spec.video_size))
    results = []
    for i, (index, seed) in enumerate(zip(indices, seeds)):
        path = None
        if videos[i] is not None:
            folder = Path(spec.video_dir or "videos")
            path = str(write_mp4(folder / video_name(task, index, success[i]), videos[i]))
        results.append(EpisodeResult(task, int(index), int(seed), bool(success[i]), int(steps[i]), path, max_steps))
    return results
