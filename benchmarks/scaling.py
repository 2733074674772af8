"""Samples/s of 1 vs 2 CPU processes (torchrun, gloo) on the same effective batch, and scaling efficiency.

Both sides launch `python -m torch.distributed.run --nproc_per_node=N -m atlas.train` (so launch and
process-group code paths match) with OMP_NUM_THREADS=1 per process: 1 process uses one core, 2 use two.
Effective batch 32 either way: 1 process runs micro 16 × accumulation 2, 2 processes micro 16 × 1 each.
Throughput is the median `samples_per_s` of the run's metrics.jsonl lines after the first (which holds
warm-up), i.e. Atlas's own per-window figure: optimizer steps × effective batch / window wall time.
Scaling efficiency = (samples/s at 2) / (2 × samples/s at 1). Repetitions alternate 1, 2, 1, 2 ...;
every launch has a timeout (a hung collective must not hang CI).

    python benchmarks/scaling.py [--quick] [--reps N] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EFFECTIVE, MICRO = 32, 16
CONFIG = """\
data: {format: synthetic, num_episodes: 16, episode_length: 40}
training: {max_steps: STEPS, val_interval: 0, checkpoint_interval: STEPS, log_interval: 5, warmup_steps: 0}
logging: {tensorboard: false, progress_bar: false}
"""
MODELS = {  # name -> (overrides, steps)
    "mlp-1024": (["model.preset=mlp", "model.hidden_dim=1024", "data.image_size=0"], 60),
    "atlas-tiny": (["model.preset=atlas-tiny", "data.image_size=32"], 25),
}
QUICK = {"mlp-1024": (["model.preset=mlp", "model.hidden_dim=1024", "data.image_size=0"], 15)}


def run(nproc: int, overrides: list[str], steps: int, root: Path, tag: str, timeout: float) -> float:
    """Launch one run; returns its median samples/s (after the first metrics window)."""
    config = root / f"{tag}.yaml"
    config.write_text(CONFIG.replace("STEPS", str(steps)))
    out = root / tag
    acc = EFFECTIVE // (MICRO * nproc)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "atlas.train", "--config", str(config), "--output-dir", str(out),
           f"data.batch_size={MICRO}", f"training.gradient_accumulation_steps={acc}", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    from atlas.engine.metrics import metrics_records

    lines = metrics_records(out)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["effective_batch_size"] == EFFECTIVE and plan["world_size"] == nproc, plan
    sps = [r["samples_per_s"] for r in lines if "samples_per_s" in r]
    return statistics.median(sps[1:] or sps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI: one small model, few steps, 1 repetition")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per world size (default 3, quick 1)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per launch")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    models = QUICK if args.quick else MODELS
    print(f"# effective batch {EFFECTIVE} (micro {MICRO}), gloo, OMP_NUM_THREADS=1 per process, {reps} reps, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    headline = []
    with tempfile.TemporaryDirectory(prefix="atlas_scaling_") as tmp:
        for name, (overrides, steps) in models.items():
            sps: dict[int, list[float]] = {1: [], 2: []}
            for rep in range(reps):
                for nproc in ((1, 2) if rep % 2 == 0 else (2, 1)):
                    sps[nproc].append(run(nproc, overrides, steps, Path(tmp), f"{name}_{nproc}_{rep}", args.timeout))
            one, two = statistics.median(sps[1]), statistics.median(sps[2])
            eff = two / (2 * one)
            print(f"{name:12s} 1 proc {one:8.1f} samples/s  2 procs {two:8.1f} samples/s  speed-up {two / one:.2f}  "
                  f"efficiency {eff:.2f}  (runs: {' '.join(f'{x:.0f}' for x in sps[1])} / "
                  f"{' '.join(f'{x:.0f}' for x in sps[2])})", flush=True)
            headline.append(f"{name} speed-up {two / one:.2f} efficiency {eff:.2f}")
    print("scaling 1->2 CPU processes: " + ", ".join(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
