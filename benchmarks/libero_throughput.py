"""LIBERO evaluation speed: environment steps/s when both 128 px cameras are rendered on every step (what
robosuite's camera observations do, and what openpi's and OpenVLA-OFT's loops get) against rendering only
when the policy looks (Atlas: every `exec_horizon` steps), then whole `evaluate_policy` runs with 1 and 2
worker processes. The headline (the speed-up of rendering only when needed) prints last.

    python benchmarks/libero_throughput.py [--quick] [--steps 96] [--exec-horizon 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

TASK = "libero_90/KITCHEN_SCENE10_close_the_top_drawer_of_the_cabinet"


def env_steps_per_s(env, steps: int, render_every: int, size: int = 128) -> float:
    """Steps/s of `steps` random actions, rendering both cameras every `render_every` steps."""
    import numpy as np

    rng = np.random.default_rng(0)
    env.reset(7, episode=0)
    start = time.perf_counter()
    for t in range(steps):
        env.step(rng.uniform(-0.3, 0.3, size=7))
        if t % render_every == render_every - 1:
            env.render("agentview", size), env.render("eye_in_hand", size)
    return steps / (time.perf_counter() - start)


def eval_steps_per_s(policy, tasks: list[str], workers: int, max_steps: int, exec_horizon: int) -> dict:
    from atlas.sim import evaluate_policy

    start = time.perf_counter()
    from atlas.sim.rollout import RolloutSpec

    summary = evaluate_policy(policy, tasks, 1, RolloutSpec(exec_horizon, max_steps, env="libero"), workers=workers)
    wall = time.perf_counter() - start
    steps = sum(e["length"] for e in summary["per_episode"])
    return {"steps_per_s": steps / wall, "wall_s": wall, "steps": steps}


def tiny_libero_policy(folder: Path, tasks: list[str]):
    """An untrained atlas-tiny policy on LIBERO-layout files of `tasks` (two 128 px cameras, 8-d state)."""
    import torch
    from data.data_h5files import write_libero_demo

    from atlas.data.config import DataConfig, DataLoadingConfig
    from atlas.data.registry import build_data
    from atlas.models.config import ModelConfig
    from atlas.models.registry import build_policy
    from atlas.sim.libero_env import resolve_task

    for task in tasks:
        t = resolve_task(task)
        write_libero_demo(folder, t.name, t.language, episodes=1, length=4, size=128)
    torch.manual_seed(0)
    bundle = build_data(DataConfig(format="libero", path=str(folder), val_ratio=0.0), DataLoadingConfig(), 16, 0)
    return build_policy(ModelConfig(preset="atlas-tiny", action_horizon=16), bundle.meta, bundle.normalizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for CI")
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument("--exec-horizon", type=int, default=16)
    args = parser.parse_args()
    steps = 16 if args.quick else args.steps

    from atlas.sim.libero_env import LiberoEnv, select_tasks

    start = time.perf_counter()
    env = LiberoEnv(TASK)
    built = time.perf_counter() - start
    start = time.perf_counter()
    env.reset(7, episode=0)
    reset = time.perf_counter() - start
    physics = env_steps_per_s(env, steps, render_every=10**9)
    every = env_steps_per_s(env, steps, render_every=1)
    when_needed = env_steps_per_s(env, steps, render_every=args.exec_horizon)
    env.close()
    print(f"env build {built:.1f} s, reset (hard, + 10 settle steps) {reset:.1f} s")
    print(f"physics only: {physics:.1f} steps/s")
    print(f"2 cameras x 128 px every step: {every:.2f} steps/s")
    print(f"2 cameras x 128 px every {args.exec_horizon} steps: {when_needed:.1f} steps/s")
    if not args.quick:
        tasks = select_tasks("libero_90", None, 2)
        with tempfile.TemporaryDirectory() as tmp:
            policy = tiny_libero_policy(Path(tmp), tasks)
            for workers in (1, 2):
                r = eval_steps_per_s(policy, tasks, workers, max_steps=steps, exec_horizon=args.exec_horizon)
                print(f"evaluate_policy 2 tasks x 1 episode x {steps} steps, {workers} worker(s): "
                      f"{r['steps_per_s']:.2f} steps/s ({r['wall_s']:.1f} s, env build and reset included)")
    print(f"HEADLINE libero rendering only when the policy looks: {when_needed:.1f} vs every step {every:.2f} "
          f"steps/s ({when_needed / every:.1f}x)")


if __name__ == "__main__":
    main()
