"""Samples/s of Atlas's loader vs a naive per-sample h5py loop on the same generated dataset, and of Atlas's
LeRobot reader on the same episodes written as a LeRobot v3.0 dataset (AV1 video, as LeRobot writes it).

Dataset: robomimic layout, two 128x128 cameras (smooth moving gradients: video-like content), 39-d state,
4-d actions (Meta-World-like). Ours: `build_data` → DataLoader(batch_sampler=EffectiveBatchSampler) over
`StepDataset`, lazy reads with one open handle per file per process, num_workers 0 and 2 (and preloaded).
Naive: for every sample, open the file, read the state, the action window and both images, close it (the
common first attempt). LeRobot: `atlas convert` of the same file (libsvtav1, keyframe every 2 frames), read
by `data.format: lerobot` with 0 and 2 workers; beside LeRobot's own `LeRobotDataset.__getitem__` where the
`lerobot` package imports (it needs a torchvision that matches torch; not installed in Atlas's environment).
The line before last compares the LeRobot reader; the last line is the headline: best of ours / naive.

    python benchmarks/dataloader.py [--quick] [--episodes N] [--length T]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torch.utils.data import DataLoader  # noqa: E402

from atlas.data.collate import collate_samples  # noqa: E402
from atlas.data.config import DataConfig, DataLoadingConfig  # noqa: E402
from atlas.data.registry import build_data  # noqa: E402
from atlas.data.sampler import EffectiveBatchSampler, SampleStream  # noqa: E402

HORIZON = 16
BATCH = 32


def smooth_frames(rng: np.random.Generator, length: int, size: int) -> np.ndarray:
    """uint8 [T, size, size, 3]: coloured gradients drifting with time (compressible like camera footage;
    raw HDF5 reads do not depend on content, video decoding does)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 6.3, size=3)
    t = np.arange(length)[:, None, None, None] * 0.1
    waves = np.sin(xx[None, :, :, None] * 3 + yy[None, :, :, None] * 2 + t + phase)
    return (127.5 + 127.5 * waves).astype(np.uint8)


def write_dataset(path: Path, episodes: int, length: int, size: int = 128) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for e in range(episodes):
            demo = f.create_group(f"data/demo_{e}")
            demo.attrs["task"] = "reach-v3"
            demo["obs/state"] = rng.normal(size=(length, 39)).astype(np.float32)
            for cam in ("corner2_image", "topview_image"):
                demo[f"obs/{cam}"] = smooth_frames(rng, length, size)
            demo["actions"] = rng.uniform(-1, 1, size=(length, 4)).astype(np.float32)


def naive(path: Path, order: np.ndarray, ranges: list[tuple[int, int]], names: list[str]) -> float:
    """Per-sample loop: open, read window, close."""
    starts = np.array([s for s, _ in ranges])
    begin = time.perf_counter()
    for index in order:
        slot = int(np.searchsorted(starts, index, side="right") - 1)
        t, length = int(index - starts[slot]), ranges[slot][1]
        with h5py.File(path, "r") as f:
            demo = f[f"data/{names[slot]}"]
            demo["obs/state"][t]
            end = min(t + HORIZON, length)
            action = demo["actions"][t:end]
            if end - t < HORIZON:
                action = np.concatenate([action, np.repeat(action[-1:], HORIZON - (end - t), 0)])
            demo["obs/corner2_image"][t]
            demo["obs/topview_image"][t]
    return len(order) / (time.perf_counter() - begin)


def ours(dataset, seed: int, samples: int, workers: int) -> float:
    stream = SampleStream(len(dataset), seed, "all_steps", dataset.episode_ranges)
    sampler = EffectiveBatchSampler(stream, BATCH, 1, max_steps=samples // BATCH)
    kwargs = {"prefetch_factor": 4} if workers else {}
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate_samples, **kwargs)
    begin = time.perf_counter()
    count = sum(len(batch["action"]) for batch in loader)
    return count / (time.perf_counter() - begin)


def lerobot_library(root: Path, order: np.ndarray) -> float | None:
    """LeRobot's own `LeRobotDataset.__getitem__` over the same order (None when the package does not import)."""
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except Exception:  # ImportError, or torchvision failing against this torch
        return None
    dataset = LeRobotDataset("local/bench", root=root, delta_timestamps={"action": [k / 10 for k in range(HORIZON)]})
    begin = time.perf_counter()
    for index in order:
        dataset[int(index)]
    return len(order) / (time.perf_counter() - begin)


def lerobot_column(path: Path, root: Path, order: np.ndarray, samples: int) -> dict[str, float]:
    """The same episodes as a LeRobot v3.0 folder, read by Atlas (0 and 2 workers) and by LeRobot if present."""
    from atlas.data.convert import convert_dataset
    from atlas.data.registry import open_source

    begin = time.perf_counter()
    convert_dataset(open_source(DataConfig(format="robomimic", path=str(path))), str(root), "lerobot", fps=10)
    size_mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6
    print(f"LeRobot v3.0 copy (AV1, libsvtav1): written in {time.perf_counter() - begin:.1f} s, {size_mb:.1f} MB "
          f"(HDF5: {path.stat().st_size / 1e6:.1f} MB)")
    dataset = build_data(DataConfig(format="lerobot", path=str(root), val_ratio=0), DataLoadingConfig(), HORIZON, 0).train
    out = {f"lerobot, workers={workers}": ours(dataset, 0, samples, workers) for workers in (0, 2)}
    library = lerobot_library(root, order[: samples // 4])
    print("LeRobotDataset.__getitem__ (the library): " + (f"{library:9.1f} samples/s" if library else
                                                        "not installed here (lerobot needs a matching torchvision)"))
    if library:
        out["library"] = library
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small dataset and sample count (CI, < 20 s)")
    parser.add_argument("--episodes", type=int, default=None)
    parser.add_argument("--length", type=int, default=None)
    args = parser.parse_args()
    episodes = args.episodes or (6 if args.quick else 16)
    length = args.length or (60 if args.quick else 100)
    samples = 512 if args.quick else 4096
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.hdf5"
        write_dataset(path, episodes, length)
        cfg = DataConfig(format="robomimic", path=str(path), val_ratio=0)
        lazy = build_data(cfg, DataLoadingConfig(), HORIZON, 0).train
        names = [lazy.source.episodes[e].group.split("/")[-1] for e in lazy.episode_ids]
        order = SampleStream(len(lazy), 0, "all_steps").take(0, samples)
        print(f"dataset: {episodes} episodes x {length} steps, 2 cameras 128x128, {samples} samples, batch {BATCH}")
        base = naive(path, order[: samples // 2], lazy.episode_ranges, names)
        print(f"naive per-sample h5py (open/read/close): {base:9.1f} samples/s")
        results = {}
        for workers in (0, 2):
            results[f"lazy, workers={workers}"] = ours(lazy, 0, samples, workers)
        preloaded = build_data(cfg, DataLoadingConfig(preload_data=True), HORIZON, 0).train
        results["preloaded, workers=0"] = ours(preloaded, 0, samples, 0)
        video = lerobot_column(path, Path(tmp) / "bench_lerobot", order, samples)
        library = video.pop("library", None)
        for name, rate in {**results, **video}.items():
            print(f"atlas {name:22s}: {rate:9.1f} samples/s  ({rate / base:.1f}x naive)")
        lerobot_best = max(video, key=video.get)
        print(f"LEROBOT atlas reader {video[lerobot_best]:.1f} samples/s ({lerobot_best}), "
              f"{video[lerobot_best] / results['lazy, workers=0']:.2f}x lazy HDF5 workers=0"
              + (f", {video[lerobot_best] / library:.1f}x LeRobotDataset" if library else ", LeRobotDataset: n/a"))
        best = max(results, key=results.get)
        print(f"HEADLINE atlas loader {results[best] / base:.1f}x naive per-sample h5py ({best}; "
              f"lazy workers=2: {results['lazy, workers=2'] / base:.1f}x)")


if __name__ == "__main__":
    main()
