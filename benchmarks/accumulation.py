"""Step time of one effective batch of 32 split as micro 32×1, 8×4 and 4×8, in Atlas's own loop.

Seed 000 claims gradient accumulation costs "~5% slower" per effective batch; this measures it. Each
configuration runs `atlas.train.train` (EMA, TensorBoard and validation off, one checkpoint at the end)
on the same synthetic data and model. The step time is the median of the loop's own `time/step_ms`
(metrics.jsonl, log_interval 1), after skipping warm-up steps: it covers data, forward/backward of every
micro-batch, clipping and the optimizer step, and no set-up, logging or checkpoint. Configurations alternate within each repetition; the figure per
configuration is the median over repetitions, reported as a ratio to 32×1.

torch.set_num_threads(1) (unless --threads): a shared 2-core CPU; one thread keeps small models steady.

    python benchmarks/accumulation.py [--quick] [--reps N] [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from atlas.config import load_config  # noqa: E402
from atlas.engine.metrics import metrics_records  # noqa: E402
from atlas.train import train  # noqa: E402

EFFECTIVE = 32
SPLITS = [(32, 1), (8, 4), (4, 8)]
WARMUP = 3
MODELS = {  # name -> (overrides, steps)
    "mlp": (["model.preset=mlp", "data.image_size=0"], 60),
    "atlas-tiny": (["model.preset=atlas-tiny", "data.image_size=32"], 20),
    "atlas-small": (["model.preset=atlas-small", "data.image_size=64"], 10),
}
QUICK = {
    "mlp": (["model.preset=mlp", "data.image_size=0"], 12),
    "atlas-tiny": (["model.preset=atlas-tiny", "data.image_size=32"], 7),
}


def make_config(overrides: list[str], steps: int, micro: int, accumulation: int):
    return load_config(None, [
        "data.format=synthetic", "data.num_episodes=16", "data.episode_length=40", f"data.batch_size={micro}",
        f"training.gradient_accumulation_steps={accumulation}", f"training.max_steps={steps}",
        "training.val_interval=0", f"training.checkpoint_interval={steps}", "training.log_interval=1",
        "training.ema.enabled=false", "logging.tensorboard=false", "logging.progress_bar=false", *overrides,
    ])


def step_times(cfg, run_dir: Path) -> list[float]:
    """Seconds of each optimizer step of the real loop, as it logged them (`time/step_ms`, log_interval 1)."""
    train(cfg, run_dir)
    return [r["time/step_ms"] / 1000.0 for r in metrics_records(run_dir) if "time/step_ms" in r]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI: mlp and atlas-tiny, few steps, 1 repetition")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reps = args.reps or (1 if args.quick else 3)
    models = QUICK if args.quick else MODELS
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, effective batch {EFFECTIVE}, {reps} reps")
    headline = []
    with tempfile.TemporaryDirectory(prefix="atlas_accum_") as tmp:
        for name, (overrides, steps) in models.items():
            per_split: dict[tuple[int, int], list[float]] = {s: [] for s in SPLITS}
            for rep in range(reps):
                order = SPLITS if rep % 2 == 0 else SPLITS[::-1]
                for micro, acc in order:
                    cfg = make_config(overrides, steps, micro, acc)
                    times = step_times(cfg, Path(tmp) / f"{name}_{micro}x{acc}_{rep}")
                    per_split[(micro, acc)].append(statistics.median(times[WARMUP:] or times))
            base = statistics.median(per_split[SPLITS[0]])
            cells = []
            for micro, acc in SPLITS:
                t = statistics.median(per_split[(micro, acc)])
                cells.append(f"{micro}x{acc} {1000 * t:8.2f} ms/step ({t / base:.3f})")
                if (micro, acc) != SPLITS[0]:
                    headline.append(f"{name} {micro}x{acc} {t / base:.2f}")
            print(f"{name:12s} " + "  ".join(cells), flush=True)
    print("accumulation step time vs 32x1: " + ", ".join(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
