"""Environment steps per second of demonstration collection and of policy evaluation, with 1 and 2
worker processes. The headline figure (collection frames/s with images, best worker count) prints last.

Collection counts only what it outputs: frames and episodes of the demos kept in the file (failed expert
attempts and surplus parallel attempts are simulated but discarded; their rate is printed beside it).
Evaluation on image data drives an image-consuming policy (atlas-tiny: a ResNet on each frame) so the row
pays for rendering and for reading the frames; state-only data drives the state MLP. One run per row (not
alternated): these are throughputs of one configuration each, not ratios.

    python benchmarks/sim_throughput.py [--quick] [--tasks reach-v3,push-v3] [--image-size 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import load_average  # noqa: E402


def bench_collect(tasks: str, episodes: int, image_size: int, cameras: str, workers: int, out: Path) -> dict:
    import h5py

    from atlas.sim import collect

    result = collect(tasks, episodes, out, image_size=image_size, cameras=cameras, seed=0, workers=workers, progress=False)
    kept = sum(t["episodes"] for t in result["tasks"].values())
    tried = sum(t["tried"] for t in result["tasks"].values())
    with h5py.File(out, "r") as f:  # the frames of the demos written: failed and surplus attempts are not output
        kept_frames = sum(len(f["data"][name]["actions"]) for name in f["data"])
    return {
        "frames_per_s": kept_frames / result["wall_time_s"],
        "simulated_frames_per_s": result["frames"] / result["wall_time_s"],
        "episodes_per_min": 60 * kept / result["wall_time_s"],
        "kept": kept,
        "tried": tried,
        "wall_s": result["wall_time_s"],
        "expert": {t: r["expert_success_rate"] for t, r in result["tasks"].items()},
    }


def bench_eval(data: Path, tasks: str, episodes: int, workers: int, max_steps: int) -> dict:
    import torch

    from atlas.data.config import DataConfig, DataLoadingConfig
    from atlas.data.registry import build_data
    from atlas.models.config import ModelConfig
    from atlas.models.registry import build_policy
    from atlas.sim import evaluate_policy

    torch.manual_seed(0)
    bundle = build_data(DataConfig(format="robomimic", path=str(data), val_ratio=0.0), DataLoadingConfig(), 8, 0)
    # an image-consuming policy for data with cameras (atlas-tiny: a ResNet on every frame), else the state MLP,
    # so the image rows pay for rendering AND for a model that reads the frames
    model = ModelConfig(preset="atlas-tiny", action_horizon=8) if bundle.meta.cameras else ModelConfig(preset="mlp", action_horizon=8, hidden_dim=256)
    policy = build_policy(model, bundle.meta, bundle.normalizer)
    start = time.perf_counter()
    from atlas.sim.rollout import RolloutSpec

    summary = evaluate_policy(policy, tasks, episodes, RolloutSpec(4, max_steps), workers=workers)
    wall = time.perf_counter() - start
    steps = sum(e["length"] for e in summary["per_episode"])
    return {"steps_per_s": steps / wall, "episodes": summary["episodes"], "wall_s": wall, "cameras": bundle.meta.cameras,
            "model": model.preset}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for CI")
    parser.add_argument("--tasks", default="reach-v3,push-v3")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--camera", default="corner2")
    args = parser.parse_args()
    episodes = 2 if args.quick else 10
    eval_episodes, eval_steps = (2, 30) if args.quick else (10, 150)
    print(f"machine: {os.cpu_count()} CPUs, MUJOCO_GL={os.environ.get('MUJOCO_GL', 'egl')}; tasks {args.tasks}")
    headline = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for workers in (1, 2):
            r = bench_collect(args.tasks, episodes, args.image_size, args.camera, workers, tmp / f"img{workers}.hdf5")
            headline[workers] = r["frames_per_s"]
            print(f"collect  images {args.image_size}px {args.camera}  workers={workers}: {r['frames_per_s']:7.1f} kept frames/s "
                  f"({r['simulated_frames_per_s']:.1f} simulated) {r['episodes_per_min']:6.1f} kept episodes/min  ({r['kept']} kept of "
                  f"{r['tried']} tried, {r['wall_s']:.1f} s) expert {r['expert']}; load {load_average()}")
        r = bench_collect(args.tasks, episodes, args.image_size, "", 1, tmp / "state.hdf5")
        print(f"collect  state only              workers=1: {r['frames_per_s']:7.1f} kept frames/s ({r['simulated_frames_per_s']:.1f} "
              f"simulated) {r['episodes_per_min']:6.1f} kept episodes/min")
        for data in (tmp / "state.hdf5", tmp / "img1.hdf5"):
            for workers in (1, 2):
                e = bench_eval(data, args.tasks, eval_episodes, workers, eval_steps)
                kind = f"images {args.image_size}px" if e["cameras"] else "state only"
                print(f"evaluate {kind:<22} workers={workers}: {e['steps_per_s']:7.1f} env steps/s "
                      f"({e['episodes']} episodes, {e['wall_s']:.1f} s incl. setup; policy {e['model']}; load {load_average()})")
    best = max(headline, key=headline.get)
    print(f"HEADLINE collection with {args.image_size}px images: {headline[best]:.1f} frames/s of kept demos ({best} worker(s); "
          f"load {load_average()})")


if __name__ == "__main__":
    main()
