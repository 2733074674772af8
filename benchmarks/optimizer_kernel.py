"""AdamW kernels side by side on a real Atlas policy: torch's per-tensor loop (its CPU default), foreach,
and fused (what the loop now builds, `atlas.engine.optim.adamw_kernel`).

Each repetition runs, for every kernel in turn, `--steps` training steps (forward, backward, optimizer
step) on one synthetic batch of the planner's probe, so model time is identical and only the optimizer
differs; the kernel order is reversed on odd repetitions so drift in machine load hits all three. Printed:
median step time per kernel and the optimizer's own time (`optimizer.step` + `zero_grad`, timed apart),
then default/fused for the whole step and for the optimizer alone, each the median of the paired
per-repetition ratios with a 95 % bootstrap interval (benchmarks/stats.py). Use >= 8 repetitions for a
figure: a 5 % effect is within one repetition's noise on a shared machine.

    python benchmarks/optimizer_kernel.py [--preset atlas-small] [--batch 64] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from atlas.config import load_config  # noqa: E402
from atlas.planning.probe import build_model, dataset_meta, make_batch  # noqa: E402
from benchmarks.stats import load_average, paired_ratios, summarize_ratios  # noqa: E402

KERNELS = {"per-tensor (torch CPU default)": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="atlas-small")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    preset, batch_size, steps, reps = args.preset, args.batch, args.steps, args.reps
    if args.quick:
        preset, batch_size, steps, reps = "atlas-tiny", 8, 3, 2
    cfg = load_config(None, [f"model.preset={preset}", "data.state_dim=39", "data.action_dim=4"])
    meta = dataset_meta(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, meta, False, False)
    batch = make_batch(meta, cfg, batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizers = {name: torch.optim.AdamW(params, lr=1e-4, **kw) for name, kw in KERNELS.items()}
    step_times = {name: [] for name in KERNELS}
    optimizer_times = {name: [] for name in KERNELS}
    rep_step = {name: [] for name in KERNELS}  # per repetition: the median of its steps
    rep_optimizer = {name: [] for name in KERNELS}
    for rep in range(reps):
        for name in (list(optimizers) if rep % 2 == 0 else list(optimizers)[::-1]):
            optimizer = optimizers[name]
            for i in range(steps + 1):
                start = time.perf_counter()
                model(batch)["loss_sum"].backward()
                middle = time.perf_counter()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                end = time.perf_counter()
                if i:  # the first step of each run warms caches and allocates the kernel's state
                    step_times[name].append(end - start)
                    optimizer_times[name].append(end - middle)
            rep_step[name].append(statistics.median(step_times[name][-steps:]))
            rep_optimizer[name].append(statistics.median(optimizer_times[name][-steps:]))
    print(f"{preset}, batch {batch_size}, {len(params)} trainable tensors, "
          f"{sum(p.numel() for p in params):,} parameters, {torch.get_num_threads()} threads, {reps} alternating reps; load {load_average()}")
    for name in KERNELS:
        print(f"  {name:32s} step {1e3 * statistics.median(step_times[name]):7.1f} ms   "
              f"optimizer {1e3 * statistics.median(optimizer_times[name]):6.1f} ms")
    default = "per-tensor (torch CPU default)"
    step = summarize_ratios(paired_ratios(rep_step[default], rep_step["fused"]))
    alone = summarize_ratios(paired_ratios(rep_optimizer[default], rep_optimizer["fused"]))
    print(f"  whole step  default/fused {step.text(3)}")
    print(f"  optimizer alone default/fused {alone.text(3)}")
    print(f"optimizer_kernel: step default/fused {step.median:.2f}, optimizer default/fused {alone.median:.2f} "
          f"(paired medians of {step.count} reps; step 95% [{step.low:.2f}, {step.high:.2f}], optimizer 95% [{alone.low:.2f}, {alone.high:.2f}])")
    return 0


if __name__ == "__main__":
    sys.exit(main())
