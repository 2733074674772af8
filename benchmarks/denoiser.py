"""The generative head's two denoisers side by side on a real Atlas policy: action tokens through the
fusion transformer at every denoising step (`transformer`, pi0/RDT) vs the transformer once per observation
into a readout token and a small MLP per step (`mlp`, Octo; `atlas/models/heads/readout.py`).

Each repetition runs, for every variant in turn, `--steps` training steps (forward, backward, fused AdamW)
on one synthetic batch of the planner's probe, then `--steps` calls of `sample_actions` on `--envs`
observations (what one closed-loop evaluation call predicts: one chunk per env); repetitions alternate the
variants so drift in machine load hits all of them. Printed: median training step and samples/s, median
sampling time per chunk batch, then the ratios transformer/mlp.

    python benchmarks/denoiser.py [--preset atlas-small] [--batch 64] [--camera] [--quick]
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
from atlas.engine.optim import adamw_kernel  # noqa: E402
from atlas.planning.probe import build_model, dataset_meta, make_batch  # noqa: E402

VARIANTS = {
    "transformer": ["model.head.denoiser=transformer"],
    "mlp": ["model.head.denoiser=mlp"],
    "mlp, 4 noise draws": ["model.head.denoiser=mlp", "model.head.noise_samples=4"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="atlas-small")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--envs", type=int, default=10, help="observations per sampling call (MT10: 10)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--camera", action="store_true", help="one 64 px camera (the quickstart config)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    preset, batch_size, steps, reps = args.preset, args.batch, args.steps, args.reps
    if args.quick:
        preset, batch_size, steps, reps = "atlas-tiny", 8, 2, 2
    image = f"data.image_size={64 if args.camera else 0}"
    common = [f"model.preset={preset}", "model.head.name=flow", "model.head.num_inference_steps=5",
              "data.state_dim=39", "data.action_dim=4", image]
    train_times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    sample_times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    setups = {}
    for name, overrides in VARIANTS.items():
        cfg = load_config(None, common + overrides)
        meta = dataset_meta(cfg)
        torch.manual_seed(0)
        model = build_model(cfg, meta, False, False)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-4, **adamw_kernel(params))
        observations = make_batch(meta, cfg, args.envs)
        setups[name] = (model, optimizer, make_batch(meta, cfg, batch_size), observations)
    for _ in range(reps):
        for name, (model, optimizer, batch, observations) in setups.items():
            model.train()
            for i in range(steps + 1):
                start = time.perf_counter()
                out = model(batch)
                (out["loss_sum"] / out["num_valid"]).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if i:  # the first step warms caches and allocates the optimizer state
                    train_times[name].append(time.perf_counter() - start)
            model.eval()
            with torch.no_grad():
                for i in range(steps + 1):
                    start = time.perf_counter()
                    model.sample_actions(observations)
                    if i:
                        sample_times[name].append(time.perf_counter() - start)
    print(f"{preset}, {'one 64 px camera + ' if args.camera else ''}state + language, flow head with 5 Euler steps, "
          f"batch {batch_size}, sampling {args.envs} observations, {torch.get_num_threads()} threads")
    for name, (model, *_rest) in setups.items():
        step = statistics.median(train_times[name])
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"  {name:20s} train step {1e3 * step:7.1f} ms ({batch_size / step:6.0f} samples/s)   "
              f"sample {1e3 * statistics.median(sample_times[name]):6.1f} ms   {trainable:,} trainable")
    slow, fast = (statistics.median(train_times[k]) for k in ("transformer", "mlp, 4 noise draws"))
    slow_s, fast_s = (statistics.median(sample_times[k]) for k in ("transformer", "mlp"))
    print(f"denoiser: train step transformer/mlp(4 draws) {slow / fast:.2f}, sampling transformer/mlp {slow_s / fast_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
