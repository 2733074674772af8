"""Wall time of Atlas's training loop vs a bare hand-written PyTorch loop, same model, data, optimizer, steps.

Atlas side: `atlas.train.train(cfg, run_dir)` with metrics.jsonl + TensorBoard logging, EMA, gradient
accumulation (2 micro-batches per step), a checkpoint interval, the tqdm bar and gradient clipping.
Validation is off: it is extra model work, not loop overhead.
Bare side: build_data + build_policy + torch.optim.AdamW (fused, as the loop builds it), then for each step two forward/backward
passes, clip_grad_norm_, optimizer.step, zero_grad, a loss `.item()` every log_interval steps, and
`torch.save({model, optimizer})` at the same checkpoint steps (what a hand-written loop saves; Atlas's
extra cost per checkpoint — safetensors, EMA weights, RNG, config, fsync, atomic rename, rotation — counts
as its overhead).

What is timed (fair to both): only the step loop, from the first step to the end of the last one. Both
sides read batches through the same reader (`atlas.data.loader.StepBatches`, one DataLoader in the
sampler's order), so data cost is identical and process start-up, data building and model building are
outside the clock. The Atlas side reads the loop's own timers from the run summary (`time_s.loop`: the
whole step loop with logging, validation and the interval and final checkpoints; `time_s.checkpoint`:
the saves), nothing in the loop is patched. Repetitions alternate bare/Atlas so drift in machine load
hits both; the headline is median/median of wall time. Process CPU time (all threads, so TensorBoard's
writer thread counts against Atlas) is printed beside it: on a shared machine it is the steadier figure.

torch.set_num_threads(1) (unless --threads): the machine is a shared 2-core CPU, and one intra-op thread
makes small-model step times stable (OpenMP spin-waits on a busy machine otherwise dominate).

    python benchmarks/overhead.py [--quick] [--reps N] [--threads T]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from atlas.config import load_config  # noqa: E402
from atlas.data.loader import BatchSplit, StepBatches  # noqa: E402
from atlas.data.registry import build_data  # noqa: E402
from atlas.data.sampler import SampleStream  # noqa: E402
from atlas.engine.optim import adamw_kernel  # noqa: E402
from atlas.models.registry import build_policy  # noqa: E402
from atlas.train import train  # noqa: E402

MICRO, ACCUMULATION, LR = 8, 2, 1e-3

# name -> (model/data overrides, steps, checkpoint interval); atlas-small needs 64 px images.
MODELS = {
    "mlp": (["model.preset=mlp", "data.image_size=0"], 300, 100),
    "atlas-small": (["model.preset=atlas-small", "data.image_size=64"], 40, 20),
}
QUICK = {
    "mlp": (["model.preset=mlp", "data.image_size=0"], 40, 20),
    "atlas-tiny": (["model.preset=atlas-tiny", "data.image_size=32"], 10, 5),
}


def make_config(model_overrides: list[str], steps: int, checkpoint_interval: int):
    return load_config(None, [
        "data.format=synthetic", "data.num_episodes=16", "data.episode_length=40", f"data.batch_size={MICRO}",
        f"training.gradient_accumulation_steps={ACCUMULATION}", f"training.max_steps={steps}",
        f"training.learning_rate={LR}", "training.warmup_steps=5", "training.lr_scheduler=cosine",
        "training.val_interval=0", f"training.checkpoint_interval={checkpoint_interval}",
        "training.checkpoints_total_limit=2", "training.log_interval=10", "training.ema.enabled=true",
        "logging.tensorboard=true", "logging.progress_bar=true", *model_overrides,
    ])


def time_atlas(cfg, root: Path, rep: int) -> tuple[float, float, float]:
    """(wall seconds of the step loop, its process CPU seconds, of which checkpoint saves), from the loop's
    own timers."""
    summary = train(cfg, root / f"atlas_{rep}")
    times = summary["time_s"]
    return times["loop"], times["loop_cpu"], times.get("checkpoint", 0.0)


def time_bare(cfg, root: Path) -> tuple[float, float, float]:
    """The loop a user would write by hand around the same components."""
    tc = cfg.training
    torch.manual_seed(tc.seed)
    data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, tc.seed, MICRO * ACCUMULATION)
    model = build_policy(cfg.model, data.meta, data.normalizer)
    params = [p for p in model.parameters() if p.requires_grad]
    # the kernel the loop picks (fused on CPU/CUDA): the optimizer is not what this benchmark compares
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=tc.weight_decay, **adamw_kernel(params))
    stream = SampleStream(len(data.train), tc.seed, cfg.data.sampling, data.train.episode_ranges)
    reader = StepBatches(data.train, stream, BatchSplit(MICRO, ACCUMULATION, 1, 0), 0, cfg.data_loading,
                         pin_memory=False)
    transform = data.transform
    cpu = torch.device("cpu")
    model.train()
    root.mkdir(parents=True, exist_ok=True)
    start, cpu_start, saving = time.perf_counter(), time.process_time(), 0.0
    for step in range(1, tc.max_steps + 1):
        micro_batches = reader.next_step()
        lr = LR * min(1.0, step / tc.warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / tc.max_steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        valid = sum(int(mb["action_mask"].sum()) * mb["action"].shape[-1] for mb in micro_batches)
        for mb in micro_batches:
            loss = model(transform(mb, cpu, train=True))["loss_sum"] / valid
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tc.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % tc.log_interval == 0:
            loss.item()
        if step % tc.checkpoint_interval == 0 or step == tc.max_steps:
            save_start = time.perf_counter()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, root / f"step_{step}.pt")
            saving += time.perf_counter() - save_start
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    reader.close()
    return elapsed, cpu, saving


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI: mlp and atlas-tiny, few steps, 2 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="alternating repetitions per side (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, see docstring)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reps = args.reps or (2 if args.quick else 5)
    models = QUICK if args.quick else MODELS
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, {reps} alternating repetitions; "
          f"micro {MICRO} x accumulation {ACCUMULATION}")
    ratios = {}
    with tempfile.TemporaryDirectory(prefix="atlas_overhead_") as tmp:
        for name, (overrides, steps, ckpt) in models.items():
            cfg = make_config(overrides, steps, ckpt)
            bare, ours = [], []
            for rep in range(reps):
                order = (("bare", "atlas") if rep % 2 == 0 else ("atlas", "bare"))
                for side in order:
                    if side == "bare":
                        bare.append(time_bare(cfg, Path(tmp) / name / f"bare_{rep}"))
                    else:
                        ours.append(time_atlas(cfg, Path(tmp) / name, rep))
            b, a = statistics.median(r[0] for r in bare), statistics.median(r[0] for r in ours)
            bc, ac = statistics.median(r[1] for r in bare), statistics.median(r[1] for r in ours)
            bs, as_ = statistics.median(r[2] for r in bare), statistics.median(r[2] for r in ours)
            no_save = statistics.median(r[0] - r[2] for r in ours) / statistics.median(r[0] - r[2] for r in bare)
            ratios[name] = (a / b, ac / bc)
            print(f"{name:12s} steps {steps:4d}  wall: bare {1000 * b / steps:7.2f} ms/step, atlas {1000 * a / steps:7.2f} "
                  f"ms/step, ratio {a / b:.3f}  |  cpu: bare {1000 * bc / steps:7.2f}, atlas {1000 * ac / steps:7.2f} "
                  f"ms/step, ratio {ac / bc:.3f}", flush=True)
            print(f"{'':12s} checkpoint saves per run: bare {bs:.3f} s, atlas {as_:.3f} s; wall ratio without the "
                  f"saves on either side {no_save:.3f}", flush=True)
            print(f"{'':12s} wall per run (s): bare {' '.join(f'{r[0]:.2f}' for r in bare)}; "
                  f"atlas {' '.join(f'{r[0]:.2f}' for r in ours)}", flush=True)
    print("overhead Atlas/bare (step loop, goal <= 1.05) wall [cpu]: "
          + ", ".join(f"{k} {w:.3f} [{c:.3f}]" for k, (w, c) in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
