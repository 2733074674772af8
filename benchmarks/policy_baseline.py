"""Atlas policy vs a plain MLP baseline: same demos, same training wall time, same evaluation seeds.

The baseline is what a user writes by hand in an afternoon: a 3x512 MLP on the state plus a per-task
vector, chunk 8, L1 loss (Atlas's `mlp` preset). The Atlas side is the quickstart config
(atlas/configs/train_config.yaml: camera + state + language, flow head). Each side first times a few
steps to turn the wall-time budget into `training.max_steps` (so both get a full LR schedule in the
same time), trains through the real loop, then runs the same closed-loop episodes.

    python benchmarks/policy_baseline.py --data data/mt10.hdf5 --minutes 10 --episodes 20
    python benchmarks/policy_baseline.py --quick          # CI: collects 6 reach-v3 demos, 20 s each side

Last line: the headline (mean success of each, Atlas - baseline, ratio of training times).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parent.parent
BASELINE = ["model.preset=mlp", "model.hidden_dim=512", "model.num_layers=3", "model.action_horizon=8",
            "data.image_keys=[]", "data.batch_size=256", "training.learning_rate=1e-3", "training.weight_decay=0.0"]


def timed_steps(config: Path, overrides: list[str], out: Path, steps: int) -> float:
    """Seconds per optimizer step of this config, from a short real run (after 2 warm-up steps)."""
    from atlas.config import load_config
    from atlas.train import train

    cfg = load_config(config, overrides + [f"training.max_steps={steps}", "training.val_interval=0",
                                           "training.checkpoint_interval=100000", "logging.progress_bar=false",
                                           "training.warmup_steps=0", "eval.every_n_steps=0", "training.log_interval=1"])
    train(cfg, out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = sorted(r["samples_per_s"] for r in rows if "samples_per_s" in r)[2:]  # drop warm-up outliers
    return cfg.data.batch_size / rates[len(rates) // 2]  # median step time, start-up excluded


def train_for(config: Path, overrides: list[str], out: Path, seconds: float, probe_dir: Path) -> tuple[Path, float]:
    per_step = timed_steps(config, overrides, probe_dir, steps=16)
    max_steps = max(20, int(seconds / per_step))
    from atlas.config import load_config
    from atlas.train import train

    cfg = load_config(config, overrides + [f"training.max_steps={max_steps}", "logging.progress_bar=false",
                                           f"training.warmup_steps={max(1, max_steps // 20)}",
                                           f"training.val_interval={max_steps}", f"training.checkpoint_interval={max_steps}",
                                           "eval.every_n_steps=0"])
    start = time.perf_counter()
    train(cfg, out)
    return out, time.perf_counter() - start


def evaluate(run: Path, tasks: list[str], episodes: int, workers: int) -> dict:
    from atlas.sim.checkpoint import load_checkpoint
    from atlas.sim.evaluate import evaluate_policy

    loaded = load_checkpoint(run, "ema", "cpu")
    return evaluate_policy(loaded.policy, tasks, episodes, exec_horizon=4, max_steps=500, seed=5000, workers=workers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/mt10.hdf5")
    parser.add_argument("--config", default=str(REPO / "atlas/configs/train_config.yaml"))
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time of each side")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per task")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    from atlas.sim.evaluate import format_table

    work = Path(tempfile.mkdtemp(prefix="atlas-baseline-"))
    data = Path(args.data)
    seconds, episodes = args.minutes * 60, args.episodes
    if args.quick:
        from atlas.sim.collection import collect

        data = work / "reach.hdf5"
        collect(["reach-v3"], 6, data, image_size=32, cameras=("corner2",), seed=0, workers=1, progress=False)
        seconds, episodes = 20.0, 3
    common = [f"data.path={data}", "data.format=robomimic"]
    sides = {"baseline (mlp)": BASELINE, "atlas": []}
    if args.quick:
        sides["atlas"] = ["model.preset=atlas-tiny", "data.batch_size=32"]
    results, times = {}, {}
    for name, overrides in sides.items():
        slug = name.split()[0]
        run, elapsed = train_for(Path(args.config), common + overrides, work / slug, seconds, work / f"{slug}-probe")
        times[name] = elapsed
        from atlas.sim.collection import read_collection_summary

        tasks = list(read_collection_summary(data))
        results[name] = evaluate(run, tasks, episodes, args.workers)
        print(f"\n{name}: trained {elapsed:.0f} s")
        print(format_table(results[name]))
    base, ours = results["baseline (mlp)"]["success_rate"], results["atlas"]["success_rate"]
    ratio = times["atlas"] / times["baseline (mlp)"]
    print(f"policy_baseline: atlas {ours:.3f} vs baseline {base:.3f} (delta {ours - base:+.3f}), "
          f"training time ratio atlas/baseline {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
