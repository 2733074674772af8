"""The generative head's two denoisers side by side on a real Atlas policy: action tokens through the
fusion transformer at every denoising step (`transformer`, pi0/RDT) vs the transformer once per observation
into a readout token and a small MLP per step (`mlp`, Octo; `atlas/models/heads/readout.py`).

Two training-step figures, kept apart because they answer different questions:
- **model step**: `--steps` steps of forward, backward and fused AdamW on ONE fixed synthetic batch of the
  planner's probe (the model's own cost: no data loading, no loop);
- **loop step**: the real training loop (`atlas.train.train` on the synthetic format, EMA on, logging as
  shipped) for `--loop-steps` steps; the figure is the loop's own `step` timer (data wait + forward/backward
  + optimizer) divided by the steps, first 5 steps' warm-up included.
Then `--steps` calls of `sample_actions` on `--envs` observations (what one closed-loop evaluation call
predicts: one chunk per env). Each repetition measures every variant, the order reversed on odd repetitions;
ratios are medians of the paired per-repetition ratios with a 95 % bootstrap interval (benchmarks/stats.py).

    python benchmarks/denoiser.py [--preset atlas-small] [--batch 64] [--camera] [--loop-steps 30] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from atlas.config import load_config  # noqa: E402
from atlas.engine.optim import adamw_kernel  # noqa: E402
from atlas.planning.probe import build_model, dataset_meta, make_batch  # noqa: E402
from benchmarks.stats import load_average, paired_ratios, summarize_ratios  # noqa: E402

VARIANTS = {
    "transformer": ["model.head.denoiser=transformer"],
    "mlp": ["model.head.denoiser=mlp"],
    "mlp, 4 noise draws": ["model.head.denoiser=mlp", "model.head.noise_samples=4"],
}


def loop_step(overrides: list[str], batch_size: int, steps: int, out: Path) -> float:
    """Seconds per step of the real training loop on synthetic data shaped like MT10 (the loop's `step` timer)."""
    from atlas.train import train

    cfg = load_config(None, overrides + ["data.format=synthetic", "data.num_episodes=16", "data.episode_length=60",
                                         f"data.batch_size={batch_size}", f"training.max_steps={steps}", "training.val_interval=0",
                                         f"training.checkpoint_interval={10 * steps}", "training.warmup_steps=1",
                                         "logging.progress_bar=false", "logging.tensorboard=false", "training.ema.enabled=true"])
    return train(cfg, out)["time_s"]["step"] / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="atlas-small")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--envs", type=int, default=10, help="observations per sampling call (MT10: 10)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--loop-steps", type=int, default=30, help="steps of each real training-loop run")
    parser.add_argument("--camera", action="store_true", help="one 64 px camera (the quickstart config)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    preset, batch_size, steps, reps, loop_steps = args.preset, args.batch, args.steps, args.reps, args.loop_steps
    if args.quick:
        preset, batch_size, steps, reps, loop_steps = "atlas-tiny", 8, 2, 2, 6
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
    loop_times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rep_train: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rep_sample: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="atlas-denoiser-") as tmp:
        for rep in range(reps):
            names = list(setups) if rep % 2 == 0 else list(setups)[::-1]
            for name in names:
                model, optimizer, batch, observations = setups[name]
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
                rep_train[name].append(statistics.median(train_times[name][-steps:]))
                rep_sample[name].append(statistics.median(sample_times[name][-steps:]))
                run_dir = Path(tmp) / f"rep{rep}_variant{list(VARIANTS).index(name)}"
                loop_times[name].append(loop_step(common + VARIANTS[name], batch_size, loop_steps, run_dir))
    print(f"{preset}, {'one 64 px camera + ' if args.camera else ''}state + language, flow head with 5 Euler steps, "
          f"batch {batch_size}, sampling {args.envs} observations, {torch.get_num_threads()} threads, {reps} alternating reps; load {load_average()}")
    for name, (model, *_rest) in setups.items():
        step, loop = statistics.median(train_times[name]), statistics.median(loop_times[name])
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"  {name:20s} model step {1e3 * step:7.1f} ms ({batch_size / step:6.0f} samples/s)   loop step {1e3 * loop:7.1f} ms "
              f"({batch_size / loop:6.0f} samples/s)   sample {1e3 * statistics.median(sample_times[name]):6.1f} ms   {trainable:,} trainable")
    model_ratio = summarize_ratios(paired_ratios(rep_train["transformer"], rep_train["mlp, 4 noise draws"]))
    loop_ratio = summarize_ratios(paired_ratios(loop_times["transformer"], loop_times["mlp, 4 noise draws"]))
    sample_ratio = summarize_ratios(paired_ratios(rep_sample["transformer"], rep_sample["mlp"]))
    print(f"  model step transformer/mlp(4 draws) {model_ratio.text(2)}")
    print(f"  loop step  transformer/mlp(4 draws) {loop_ratio.text(2)}")
    print(f"  sampling   transformer/mlp          {sample_ratio.text(2)}")
    print(f"denoiser: train step transformer/mlp(4 draws) {model_ratio.median:.2f}, sampling transformer/mlp {sample_ratio.median:.2f}, "
          f"loop step transformer/mlp(4 draws) {loop_ratio.median:.2f} (model step = one fixed batch; loop step = the training loop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
