"""AdamW kernels side by side on a real Atlas policy: torch's per-tensor loop (its CPU default), foreach,
and fused (what the loop now builds, `atlas.engine.optim.adamw_kernel`).

Each repetition runs, for every kernel in turn, `--steps` training steps (forward, backward, optimizer
step) on one synthetic batch of the planner's probe, so model time is identical and only the optimizer
differs; repetitions alternate kernels so drift in machine load hits all three. Printed: median step time
per kernel and the optimizer's own time (step alone, timed separately), then the ratio default/fused.

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

KERNELS = {"per-tensor (torch CPU default)": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="atlas-small")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reps", type=int, default=4)
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
    for _ in range(reps):
        for name, optimizer in optimizers.items():
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
    print(f"{preset}, batch {batch_size}, {len(params)} trainable tensors, "
          f"{sum(p.numel() for p in params):,} parameters, {torch.get_num_threads()} threads")
    for name in KERNELS:
        print(f"  {name:32s} step {1e3 * statistics.median(step_times[name]):7.1f} ms   "
              f"optimizer {1e3 * statistics.median(optimizer_times[name]):6.1f} ms")
    default, fused = (statistics.median(step_times[k]) for k in ("per-tensor (torch CPU default)", "fused"))
    opt_default, opt_fused = (statistics.median(optimizer_times[k]) for k in ("per-tensor (torch CPU default)", "fused"))
    print(f"optimizer_kernel: step default/fused {default / fused:.2f}, optimizer default/fused {opt_default / opt_fused:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
