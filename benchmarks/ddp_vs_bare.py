"""Samples/s of Atlas's training loop vs a bare hand-written DDP loop, same model, world size and batch (CPU, gloo).

Both sides start with `python -m torch.distributed.run --standalone --nproc_per_node=N` and
OMP_NUM_THREADS=1 per process, on the same model (`build_policy` from the same config), AdamW with the
kernel the loop picks, gradient clipping, the same micro-batch per rank and one micro-batch per step.

- bare (`--worker`, below): a process group, `DistributedDataParallel`, the batch transform
  (normalization) per micro-batch, forward, backward, clip, step; a loss `.item()` per log window. Its data,
  `--bare-data`: `loader` (default) reads as a hand-written loop does, a `torch.utils.data.DataLoader`
  over the same dataset with a `DistributedSampler` (shuffled, a new epoch's order from `set_epoch`),
  the same collate function and no worker processes (Atlas's default on CPU); `memory` collates 16
  micro-batches before the clock and cycles them, a ceiling that pays for no data loading at all.
- Atlas: `atlas.train` itself, EMA and intermediate checkpoints off (the bare loop has neither), metrics
  every `LOG` steps. It reads its batches through its DataLoader in the main process.

Throughput on both sides is samples per second over log windows after the first (which holds warm-up):
Atlas's own `samples_per_s` in metrics.jsonl; the bare worker times its windows the same way. The
headline is the median over repetitions of the PAIRED ratio Atlas/bare (the two runs of one repetition
run back to back, their order alternating), with the min-max of those ratios as its spread. Every launch
has a timeout.

    python benchmarks/ddp_vs_bare.py [--quick] [--reps N] [--world 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MICRO, LOG, LR = 32, 5, 1e-3
MODEL = ["model.preset=mlp", "model.hidden_dim=1024", "data.image_size=0"]  # ~2.2 M parameters
COMMON = ["data.format=synthetic", "data.num_episodes=16", "data.episode_length=40", f"data.batch_size={MICRO}",
          "training.val_interval=0", "training.warmup_steps=0", "training.lr_scheduler=constant",
          f"training.learning_rate={LR}", f"training.log_interval={LOG}", "training.ema.enabled=false",
          "logging.tensorboard=false", "logging.progress_bar=false"]


def bare_batches(dataset, rank: int, world: int, seed: int, source: str):
    """This rank's micro-batches, endlessly: through a DataLoader (`loader`) or from memory (`memory`)."""
    from torch.utils.data import DataLoader, DistributedSampler

    from atlas.data.collate import collate_samples

    if source == "memory":
        n = len(dataset)
        batches = [collate_samples([dataset[(rank * MICRO + (b * world * MICRO) + i) % n] for i in range(MICRO)])
                   for b in range(16)]
        while True:
            yield from batches
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=MICRO, sampler=sampler, collate_fn=collate_samples, drop_last=True)
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def bare_step(model, transform, mb: dict, optimizer, clip: tuple[list, float]):
    """One hand-written optimizer step on one micro-batch: forward, backward, clip (the parameters, the max
    norm), update; its loss."""
    import torch

    from atlas.data.loader import valid_elements

    loss = model(transform(mb, torch.device("cpu"), train=True))["loss_sum"] / valid_elements(mb)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(*clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def bare_worker(overrides: list[str], steps: int, out: Path, source: str) -> None:
    """The loop a user writes by hand around torch DDP (run under torchrun)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from atlas.config import load_config
    from atlas.data.registry import build_data
    from atlas.engine.optim import adamw_kernel
    from atlas.models.registry import build_policy

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = load_config(None, COMMON + overrides)
    torch.manual_seed(cfg.training.seed)
    data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, cfg.training.seed, MICRO * world)
    model = DistributedDataParallel(build_policy(cfg.model, data.meta, data.normalizer))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=cfg.training.weight_decay, **adamw_kernel(params))
    batches = bare_batches(data.train, rank, world, cfg.training.seed, source)
    model.train()
    windows, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        loss = bare_step(model, data.transform, next(batches), optimizer, (params, cfg.training.max_grad_norm))
        if step % LOG == 0:
            loss.item()
            now = time.perf_counter()
            windows.append(LOG * MICRO * world / (now - start))
            start = now
    if rank == 0:
        out.write_text(json.dumps(windows))
    dist.destroy_process_group()


def _launch(args: list[str], nproc: int, timeout: float) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def run_bare(nproc: int, steps: int, root: Path, tag: str, timeout: float, source: str) -> float:
    out = root / f"{tag}.json"
    _launch([str(Path(__file__).resolve()), "--worker", "--steps", str(steps), "--out", str(out),
             "--bare-data", source], nproc, timeout)
    windows = json.loads(out.read_text())
    return statistics.median(windows[1:] or windows)


def run_atlas(nproc: int, steps: int, root: Path, tag: str, timeout: float) -> float:
    from atlas.engine.metrics import metrics_records

    config = root / "empty.yaml"
    config.write_text("{}\n")
    out = root / tag
    _launch(["-m", "atlas.train", "--config", str(config), "--output-dir", str(out), *COMMON, *MODEL,
             f"training.max_steps={steps}", f"training.checkpoint_interval={steps}"], nproc, timeout)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["micro_batch_size"] == MICRO and plan["world_size"] == nproc, plan
    sps = [r["samples_per_s"] for r in metrics_records(out) if "samples_per_s" in r]
    return statistics.median(sps[1:] or sps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI: 1 process, few steps, 1 repetition")
    parser.add_argument("--reps", type=int, default=None, help="paired repetitions per world size (default 5, quick 1)")
    parser.add_argument("--world", default=None, help="world sizes, comma-separated (default 1,2; quick 1)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 200, quick 20)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per launch")
    parser.add_argument("--bare-data", choices=("loader", "memory"), default="loader",
                        help="the bare loop's data: a DataLoader (default) or batches collated before the clock")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (20 if args.quick else 200)
    if args.worker:
        bare_worker(MODEL, steps, args.out, args.bare_data)
        return 0
    reps = args.reps or (1 if args.quick else 5)
    worlds = args.world or ("1" if args.quick else "1,2")
    print(f"# mlp hidden 1024, micro {MICRO} per rank, {steps} steps, gloo, OMP_NUM_THREADS=1 per process, "
          f"{reps} paired reps, bare data: {args.bare_data}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    headline = []
    with tempfile.TemporaryDirectory(prefix="atlas_ddp_vs_bare_") as tmp:
        for world in (int(w) for w in worlds.split(",")):
            pairs = []
            for rep in range(reps):
                sides = ("bare", "atlas") if rep % 2 == 0 else ("atlas", "bare")
                got = {}
                for side in sides:
                    tag = f"{side}_{world}_{rep}"
                    got[side] = (run_bare(world, steps, Path(tmp), tag, args.timeout, args.bare_data) if side == "bare"
                                 else run_atlas(world, steps, Path(tmp), tag, args.timeout))
                pairs.append((got["bare"], got["atlas"]))
            ratios = [a / b for b, a in pairs]
            ratio = statistics.median(ratios)
            print(f"world {world}: bare {statistics.median(p[0] for p in pairs):8.1f} samples/s, Atlas "
                  f"{statistics.median(p[1] for p in pairs):8.1f} samples/s; paired ratio Atlas/bare median {ratio:.3f} "
                  f"(min {min(ratios):.3f}, max {max(ratios):.3f}; pairs: "
                  f"{', '.join(f'{b:.0f}/{a:.0f}' for b, a in pairs)})", flush=True)
            headline.append(f"world {world} {ratio:.3f}")
    print("Atlas/bare DDP samples/s (goal >= 0.95): " + ", ".join(headline) + f"; load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
