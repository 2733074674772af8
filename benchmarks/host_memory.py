"""Page faults and step time of a CPU training step under glibc's default thresholds vs Atlas's setting.

Each mode runs in its own process (the thresholds are process-wide): the ddp_vs_bare model (mlp hidden 1024,
~2.2 M parameters, micro-batch 32) built by `build_policy`, AdamW with the loop's parameter groups, batches
read through a DataLoader, no DDP (Atlas's single-process path). After WARMUP steps, the minor page faults
(`ru_minflt`) per step and the median step time are taken over the next steps; peak RSS at the end.
Modes: `default` (glibc as it starts), `mmap` (only the mmap threshold at 32 MiB), `trim` (only the trim
threshold at 1 GiB), `atlas` (`atlas.engine.host_memory.keep_freed_host_memory`, both). Repetitions
alternate the order of the modes; the figures are medians over repetitions.

    python benchmarks/host_memory.py [--quick] [--reps N] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODES = ("default", "mmap", "trim", "atlas")
WARMUP = 10


def apply(mode: str) -> None:
    """Set this process's thresholds for `mode`."""
    from atlas.engine import host_memory as H

    if mode == "atlas":
        print(H.keep_freed_host_memory(), file=sys.stderr)
    elif mode != "default":
        which, value = ((H.M_MMAP_THRESHOLD, H.MMAP_THRESHOLD) if mode == "mmap"
                        else (H.M_TRIM_THRESHOLD, H.TRIM_THRESHOLD))
        assert H.mallopt(which, value), mode


def worker(mode: str, steps: int) -> dict:
    """One mode's figures: faults per step, median step ms, peak RSS MiB."""
    import resource
    import time

    import torch

    apply(mode)
    torch.set_num_threads(1)
    from atlas.config import load_config
    from atlas.data.registry import build_data
    from atlas.engine.optim import build_optimizer, build_param_groups
    from atlas.models.registry import build_policy
    from benchmarks.ddp_vs_bare import COMMON, LR, MICRO, MODEL, bare_batches, bare_step

    cfg = load_config(None, COMMON + MODEL)
    torch.manual_seed(cfg.training.seed)
    data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, cfg.training.seed, MICRO)
    model = build_policy(cfg.model, data.meta, data.normalizer)
    groups, _ = build_param_groups(model, cfg.training.lr_multipliers, cfg.training.weight_decay)
    optimizer = build_optimizer(groups, LR, cfg.training.adam_betas, cfg.training.adam_eps)
    batches = bare_batches(data.train, 0, 1, cfg.training.seed, "loader")
    times, clip = [], ([p for p in model.parameters() if p.requires_grad], cfg.training.max_grad_norm)
    for step in range(WARMUP + steps):
        if step == WARMUP:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        bare_step(model, data.transform, next(batches), optimizer, clip)
        if step >= WARMUP:
            times.append(time.perf_counter() - start)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"faults_per_step": (usage.ru_minflt - faults) / steps, "step_ms": 1e3 * statistics.median(times),
            "peak_rss_mib": usage.ru_maxrss / 1024}


def run(mode: str, steps: int, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--steps", str(steps)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise RuntimeError(f"mode {mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI: default vs atlas, 1 repetition, 30 steps")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default 100, quick 30)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (30 if args.quick else 100)
    if args.worker:
        print(json.dumps(worker(args.worker, steps)))
        return 0
    reps = args.reps or (1 if args.quick else 3)
    modes = ("default", "atlas") if args.quick else MODES
    print(f"# mlp hidden 1024, micro 32, {steps} steps after {WARMUP}, OMP_NUM_THREADS=1, {reps} reps, "
          f"load {os.getloadavg()[0]:.1f}")
    got: dict[str, list[dict]] = {mode: [] for mode in modes}
    for rep in range(reps):
        for mode in (modes if rep % 2 == 0 else tuple(reversed(modes))):
            got[mode].append(run(mode, steps, args.timeout))
    summary = {}
    for mode, rows in got.items():
        summary[mode] = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        runs = " ".join(f"{r['step_ms']:.1f}" for r in rows)
        print(f"{mode:8s} faults/step {summary[mode]['faults_per_step']:8.1f}  step {summary[mode]['step_ms']:6.2f} ms "
              f"(runs: {runs})  peak RSS {summary[mode]['peak_rss_mib']:.0f} MiB")
    base, atlas = summary["default"], summary["atlas"]
    print(f"host memory: faults/step default {base['faults_per_step']:.0f} atlas {atlas['faults_per_step']:.0f}; "
          f"step time atlas/default {atlas['step_ms'] / base['step_ms']:.3f}; "
          f"peak RSS +{atlas['peak_rss_mib'] - base['peak_rss_mib']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
