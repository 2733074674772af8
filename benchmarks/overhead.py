"""Wall time of Atlas's training loop vs a bare hand-written PyTorch loop, same model, data, optimizer, steps.

Atlas side: `atlas.train.train(cfg, run_dir)` with metrics.jsonl logging (TensorBoard off: the bare side has one sink too), EMA, gradient
accumulation (2 micro-batches per step), a checkpoint interval, the tqdm bar and gradient clipping.
Validation is off: it is extra model work, not loop overhead.
Bare side: build_data + build_policy + the loop's AdamW (fused; decay and no-decay groups, `build_optimizer`), then for each step two forward/backward
passes, clip_grad_norm_, optimizer.step, zero_grad, an EMA of the trainable weights (one `_foreach_lerp_`,
as Atlas's EMA is on), a metrics.jsonl line (loss, LR, grad norm) every log_interval steps, and
`torch.save({model, optimizer})` at the same checkpoint steps (what a hand-written loop saves; Atlas's
extra cost per checkpoint — safetensors, EMA weights, RNG, config, fsync, atomic rename, rotation — counts
as its overhead).

What is timed (fair to both): only the step loop, from the first step to the end of the last one. Both
sides read batches through the same reader (`atlas.data.loader.StepBatches`, one DataLoader in the
sampler's order), so data cost is identical and process start-up, data building and model building are
outside the clock. The Atlas side reads the loop's own timers from the run summary (`time_s.loop`: the
whole step loop with logging, validation and the interval and final checkpoints; `time_s.checkpoint`:
the saves), nothing in the loop is patched. Repetitions alternate the order (bare first on even ones,
Atlas first on odd ones) so drift in machine load hits both; the headline is the median of the PAIRED
per-repetition ratios (Atlas/bare of the same repetition) with a 95 % percentile-bootstrap interval of that
median and the range over repetitions (benchmarks/stats.py). Process CPU time (all threads, so
TensorBoard's writer thread counts against Atlas) is printed beside it: on a shared machine it is the
steadier figure. Checkpoints: each run writes 5 (its length / 5 apart, as a 5000-step quickstart run
saving every 1000 writes 5), and the fixed costs (per step: (atlas - bare)/steps with the saves taken out
of both sides; per save: (atlas - bare) save seconds / saves) are projected onto that real run.

torch.set_num_threads(1) (unless --threads): the machine is a shared 2-core CPU, and one intra-op thread
makes small-model step times stable (OpenMP spin-waits on a busy machine otherwise dominate).

    python benchmarks/overhead.py [--quick] [--reps N] [--threads T] [--models mlp-fixed,mlp,mlp-async,atlas-small]
"""

from __future__ import annotations

import argparse
import json
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
from atlas.engine.host_memory import keep_freed_host_memory  # noqa: E402
from atlas.engine.optim import build_optimizer, build_param_groups  # noqa: E402
from atlas.models.registry import build_policy  # noqa: E402
from atlas.train import train  # noqa: E402
from benchmarks.stats import alternating, load_average, paired_ratios, summarize_ratios  # noqa: E402

MICRO, ACCUMULATION, LR = 8, 2, 1e-3

# name -> (model/data overrides, steps); atlas-small needs 64 px images. `mlp-fixed` (an 8-wide, 1-layer mlp:
# ~1 k parameters) measures the loop's fixed cost per step where the model's own time, and with it the run-to-run
# noise of this VM (±10 % of a step), is smallest: on the 148 k mlp that noise (±0.5 ms) is larger than the cost.
MODELS = {
    "mlp-fixed": (["model.preset=mlp", "data.image_size=0", "model.hidden_dim=8", "model.num_layers=1"], 1000),
    "mlp": (["model.preset=mlp", "data.image_size=0"], 300),
    # the same run with training.async_checkpoint: the training thread takes a host copy, a writer thread
    # serializes, checksums and fsyncs it (the bare side's torch.save is neither checksummed nor flushed)
    "mlp-async": (["model.preset=mlp", "data.image_size=0", "training.async_checkpoint=true"], 300),
    "atlas-small": (["model.preset=atlas-small", "data.image_size=64"], 40),
}
QUICK = {
    "mlp": (["model.preset=mlp", "data.image_size=0"], 40),
    "atlas-tiny": (["model.preset=atlas-tiny", "data.image_size=32"], 10),
}
# A real run (the quickstart's): 5000 steps, a checkpoint every 1000. Each benchmark run writes as many saves
# (SAVES_PER_RUN, the interval scaled to its length), and the projection to the real run uses the measured
# per-step and per-save costs.
REAL_STEPS, REAL_INTERVAL, SAVES_PER_RUN = 5000, 1000, 5


def make_config(model_overrides: list[str], steps: int, checkpoint_interval: int):
    return load_config(None, [
        "data.format=synthetic", "data.num_episodes=16", "data.episode_length=40", f"data.batch_size={MICRO}",
        f"training.gradient_accumulation_steps={ACCUMULATION}", f"training.max_steps={steps}",
        f"training.learning_rate={LR}", "training.warmup_steps=5", "training.lr_scheduler=cosine",
        "training.val_interval=0", f"training.checkpoint_interval={checkpoint_interval}",
        "training.checkpoints_total_limit=2", "training.log_interval=10", "training.ema.enabled=true",
        "logging.tensorboard=false", "logging.progress_bar=true", *model_overrides,
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
    # the optimizer the loop builds (AdamW, fused; weight decay on matrices, none on biases and norms, as
    # nanoGPT and every careful hand-written loop split them): the optimizer is not what this benchmark compares
    groups, _ = build_param_groups(model, tc.lr_multipliers, tc.weight_decay)
    optimizer = build_optimizer(groups, LR, tc.adam_betas, tc.adam_eps)
    stream = SampleStream(len(data.train), tc.seed, cfg.data.sampling, data.train.episode_ranges)
    reader = StepBatches(data.train, stream, BatchSplit(MICRO, ACCUMULATION, 1, 0), 0, cfg.data_loading,
                         pin_memory=False)
    transform = data.transform
    cpu = torch.device("cpu")
    model.train()
    root.mkdir(parents=True, exist_ok=True)
    # the EMA a hand-written loop keeps when the run has one (Atlas's is on): fp32 copies, one lerp per step
    shadows = [p.detach().clone() for p in params] if tc.ema.enabled else None
    log = (root / "metrics.jsonl").open("a")
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
        norm = torch.nn.utils.clip_grad_norm_(params, tc.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if shadows is not None:
            decay = min(tc.ema.max_decay, 1.0 - step ** -tc.ema.power)
            torch._foreach_lerp_(shadows, [p.detach() for p in params], 1.0 - decay)
        if step % tc.log_interval == 0:
            log.write(json.dumps({"step": step, "loss": loss.item() * valid, "lr": lr, "grad_norm": norm.item()}) + "\n")
            log.flush()
        if step % tc.checkpoint_interval == 0 or step == tc.max_steps:
            save_start = time.perf_counter()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, root / f"step_{step}.pt")
            saving += time.perf_counter() - save_start
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    log.close()
    reader.close()
    return elapsed, cpu, saving


def save_count(steps: int, interval: int) -> int:
    """Checkpoints a run of `steps` writes at `interval` (the periodic ones plus the final one)."""
    return steps // interval + (steps % interval != 0)


def measure(name: str, cfg, reps: int, root: Path) -> dict:
    """Alternating repetitions (bare first on even ones); per repetition the paired ratios and differences."""
    rows = []
    for rep in range(reps):
        got = {}
        for side in alternating(rep, "bare", "atlas"):
            got[side] = time_bare(cfg, root / name / f"bare_{rep}") if side == "bare" else time_atlas(cfg, root / name, rep)
        rows.append(got)
        print(f"  {name} rep {rep}: bare {got['bare'][0]:.2f} s, atlas {got['atlas'][0]:.2f} s (load {load_average()})", flush=True)
    return {
        "bare": [r["bare"] for r in rows], "atlas": [r["atlas"] for r in rows],
        "wall": summarize_ratios(paired_ratios([r["atlas"][0] for r in rows], [r["bare"][0] for r in rows])),
        "cpu": summarize_ratios(paired_ratios([r["atlas"][1] for r in rows], [r["bare"][1] for r in rows])),
        "no_save": summarize_ratios(paired_ratios([r["atlas"][0] - r["atlas"][2] for r in rows], [r["bare"][0] - r["bare"][2] for r in rows])),
        # the fixed cost per step and per save, paired differences (atlas - bare) of the same repetition
        "step_ms": summarize_ratios([1e3 * ((r["atlas"][0] - r["atlas"][2]) - (r["bare"][0] - r["bare"][2])) / cfg.training.max_steps
                                     for r in rows]),
        "bare_step_ms": statistics.median(1e3 * (r["bare"][0] - r["bare"][2]) / cfg.training.max_steps for r in rows),
        "save_s": summarize_ratios([(r["atlas"][2] - r["bare"][2]) / save_count(cfg.training.max_steps, cfg.training.checkpoint_interval)
                                    for r in rows]),
    }


def chosen_models(parser: argparse.ArgumentParser, models: dict, names: str | None) -> dict:
    """The `--models` subset (comma-separated names) of `models`, all of them when none is named; an unknown
    name is a usage error listing the known ones."""
    if not names:
        return models
    unknown = sorted(set(names.split(",")) - set(models))
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(models)})")
    return {name: models[name] for name in names.split(",")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI: mlp and atlas-tiny, few steps, 2 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="alternating repetitions per side (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, see docstring)")
    parser.add_argument("--models", default=None, help=f"comma-separated subset of {', '.join(MODELS)} (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # the allocator settings Atlas's first run sets for the whole process, set before the first rep so that
    # every rep of both sides runs under them (their own gain, across processes: ddp_vs_bare.py)
    print(f"# {keep_freed_host_memory()}")
    reps = args.reps or (2 if args.quick else 5)
    models = chosen_models(parser, QUICK if args.quick else MODELS, args.models)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, {reps} alternating repetitions; "
          f"micro {MICRO} x accumulation {ACCUMULATION}; load {load_average()}")
    headline = {}
    with tempfile.TemporaryDirectory(prefix="atlas_overhead_") as tmp:
        for name, (overrides, steps) in models.items():
            interval = max(1, steps // SAVES_PER_RUN)
            cfg = make_config(overrides, steps, interval)
            m = measure(name, cfg, reps, Path(tmp))
            saves = save_count(steps, interval)
            b_wall = statistics.median(r[0] for r in m["bare"])
            a_wall = statistics.median(r[0] for r in m["atlas"])
            # a real run: REAL_STEPS steps, a checkpoint every REAL_INTERVAL (the quickstart's), from the measured costs
            real_saves = save_count(REAL_STEPS, REAL_INTERVAL)
            bare_real = REAL_STEPS * m["bare_step_ms"] / 1e3 + real_saves * statistics.median(r[2] for r in m["bare"]) / saves
            extra_real = REAL_STEPS * m["step_ms"].median / 1e3 + real_saves * m["save_s"].median
            projected = 1 + extra_real / bare_real
            headline[name] = (m["wall"].median, m["cpu"].median)
            print(f"{name:12s} steps {steps}, checkpoint every {interval} ({saves} saves, as many as a {REAL_STEPS}-step run "
                  f"saving every {REAL_INTERVAL}); median wall per run bare {b_wall:.2f} s, atlas {a_wall:.2f} s")
            print(f"{'':12s} wall ratio {m['wall'].text()}")
            print(f"{'':12s} cpu  ratio {m['cpu'].text()}")
            print(f"{'':12s} wall ratio without either side's saves {m['no_save'].text()}")
            print(f"{'':12s} fixed cost per step (atlas - bare, saves excluded) {m['step_ms'].text(2)} ms on a bare step of "
                  f"{m['bare_step_ms']:.2f} ms; per save {m['save_s'].text(3)} s")
            print(f"{'':12s} projected for {REAL_STEPS} steps saving every {REAL_INTERVAL}: Atlas/bare {projected:.3f}", flush=True)
    print(f"overhead Atlas/bare (step loop, paired median, goal <= 1.05; load {load_average()}) wall [cpu]: "
          + ", ".join(f"{k} {w:.3f} [{c:.3f}]" for k, (w, c) in headline.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
