"""Samples/s of Atlas's loader vs a naive per-sample h5py loop on the same generated dataset, and of Atlas's
LeRobot reader on the same episodes written as a LeRobot v3.0 dataset (AV1 video, as LeRobot writes it).

Dataset: robomimic layout, two 128x128 cameras (smooth moving gradients: video-like content), 39-d state,
4-d actions (Meta-World-like). Ours: the loop's own reader (`StepBatches`: a DataLoader over `StepDataset`
in the sampler's order), lazy reads with one open handle per file per process; the headline is its DEFAULT
path (lazy, num_workers=0: `DataLoadingConfig()`), with 2 workers and preloaded beside it. The preload is timed:
its row gives the read rate, and the row "incl. preload" counts the preload on the clock for this many samples.
Baseline: what a user writes — a map-style torch Dataset that keeps the h5py file open (one handle per process)
and reads state, the action window and both images per sample, behind a torch DataLoader with its default
collate, same batch and sample order, at 0 and 2 workers. LeRobot: `atlas convert` of the same file
(libsvtav1, keyframe every 2 frames), read by `data.format: lerobot`, beside LeRobot's own
`LeRobotDataset.__getitem__` where the `lerobot` package imports (it needs a torchvision that matches torch).
Every variant runs once per repetition, the order reversed on odd repetitions (>= 3); figures are medians and
ratios the median of paired per-repetition ratios with a 95 % bootstrap interval (benchmarks/stats.py).
The line before last compares the LeRobot reader; the last line is the headline.

    python benchmarks/dataloader.py [--quick] [--episodes N] [--length T] [--reps R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torch.utils.data import DataLoader, Dataset  # noqa: E402

from atlas.data.config import DataConfig, DataLoadingConfig  # noqa: E402
from atlas.data.loader import BatchSplit, StepBatches  # noqa: E402
from atlas.data.registry import build_data  # noqa: E402
from atlas.data.sampler import SampleStream  # noqa: E402
from benchmarks.stats import load_average, paired_ratios, summarize_ratios  # noqa: E402

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


class OpenHandleWindows(Dataset):
    """The baseline a user writes: a map-style Dataset over the same (episode, t) windows that opens the file
    once per process (lazily, so DataLoader workers each get their own handle) and reads state, the action
    window and both images with h5py; batched by torch's DataLoader with its default collate."""

    def __init__(self, path: Path, ranges: list[tuple[int, int]], names: list[str]):
        self.path, self.ranges, self.names = path, ranges, names
        self.starts = np.array([s for s, _ in ranges])
        self.file = None

    def __len__(self) -> int:
        return int(sum(length for _, length in self.ranges))

    def __getitem__(self, index: int) -> dict:
        if self.file is None:
            self.file = h5py.File(self.path, "r")
        slot = int(np.searchsorted(self.starts, index, side="right") - 1)
        t, length = int(index - self.starts[slot]), self.ranges[slot][1]
        demo = self.file[f"data/{self.names[slot]}"]
        end = min(t + HORIZON, length)
        action = demo["actions"][t:end]
        if end - t < HORIZON:
            action = np.concatenate([action, np.repeat(action[-1:], HORIZON - (end - t), 0)])
        return {"state": demo["obs/state"][t], "action": action,
                "images": np.stack([demo["obs/corner2_image"][t], demo["obs/topview_image"][t]])}


def naive(dataset: OpenHandleWindows, order: np.ndarray, workers: int) -> float:
    """samples/s of the open-handle h5py Dataset behind a DataLoader, in the same sample order as ours."""
    kwargs = {"prefetch_factor": 4} if workers else {}
    loader = DataLoader(dataset, batch_size=BATCH, sampler=[int(i) for i in order], num_workers=workers, **kwargs)
    begin = time.perf_counter()
    count = sum(len(batch["action"]) for batch in loader)
    return count / (time.perf_counter() - begin)


def ours(dataset, seed: int, samples: int, workers: int) -> float:
    """samples/s of the loop's own reader (`StepBatches`: a DataLoader over `StepDataset` in the sampler's order)."""
    stream = SampleStream(len(dataset), seed, "all_steps", dataset.episode_ranges)
    begin = time.perf_counter()
    reader = StepBatches(dataset, stream, BatchSplit(BATCH, 1, 1, 0), 0, DataLoadingConfig(num_workers=workers), pin_memory=False)
    count = sum(len(reader.next_step()[0]["action"]) for _ in range(samples // BATCH))
    reader.close()
    return count / (time.perf_counter() - begin)


def preloaded(cfg: DataConfig, samples: int) -> tuple[float, float]:
    """(samples/s reading, samples/s counting the preload too): the preload's cost is on the clock here."""
    begin = time.perf_counter()
    dataset = build_data(cfg, DataLoadingConfig(preload_data=True), HORIZON, 0).train
    preload_s = time.perf_counter() - begin
    rate = ours(dataset, 0, samples, 0)
    return rate, samples / (preload_s + samples / rate)


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


def lerobot_copy(path: Path, root: Path):
    """The same episodes as a LeRobot v3.0 folder (written once), opened by Atlas's LeRobot reader."""
    from atlas.data.convert import convert_dataset
    from atlas.data.registry import open_source

    begin = time.perf_counter()
    convert_dataset(open_source(DataConfig(format="robomimic", path=str(path))), str(root), "lerobot", fps=10)
    size_mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6
    print(f"LeRobot v3.0 copy (AV1, libsvtav1): written in {time.perf_counter() - begin:.1f} s, {size_mb:.1f} MB "
          f"(HDF5: {path.stat().st_size / 1e6:.1f} MB)")
    return build_data(DataConfig(format="lerobot", path=str(root), val_ratio=0), DataLoadingConfig(), HORIZON, 0).train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small dataset and sample count (CI)")
    parser.add_argument("--episodes", type=int, default=None)
    parser.add_argument("--length", type=int, default=None)
    parser.add_argument("--reps", type=int, default=3, help="alternating repetitions (>= 3)")
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
        baseline = OpenHandleWindows(path, lazy.episode_ranges, names)
        video = lerobot_copy(path, Path(tmp) / "bench_lerobot")
        print(f"dataset: {episodes} episodes x {length} steps, 2 cameras 128x128, {samples} samples, batch {BATCH}, "
              f"{args.reps} alternating repetitions; load {load_average()}")
        variants = {
            "naive, workers=0": lambda: naive(baseline, order, 0),
            "naive, workers=2": lambda: naive(baseline, order, 2),
            "lazy, workers=0": lambda: ours(lazy, 0, samples, 0),
            "lazy, workers=2": lambda: ours(lazy, 0, samples, 2),
            "preloaded, workers=0": lambda: preloaded(cfg, samples),
            "lerobot, workers=0": lambda: ours(video, 0, samples, 0),
            "lerobot, workers=2": lambda: ours(video, 0, samples, 2),
        }
        rates: dict[str, list[float]] = {name: [] for name in variants}
        with_preload: list[float] = []
        for rep in range(args.reps):
            for name in (list(variants) if rep % 2 == 0 else list(variants)[::-1]):
                got = variants[name]()
                if name.startswith("preloaded"):
                    got, amortized = got
                    with_preload.append(amortized)
                rates[name].append(got)
            print(f"  rep {rep}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()) + f" (load {load_average()})", flush=True)
        base = rates["naive, workers=0"]
        for name, values in rates.items():
            ratio = summarize_ratios(paired_ratios(values, base))
            print(f"{name:22s}: {statistics.median(values):9.1f} samples/s (range {min(values):.0f}-{max(values):.0f}), "
                  f"paired vs naive workers=0 {ratio.text(2)}")
        amortized = summarize_ratios(paired_ratios(with_preload, base))
        print(f"{'preloaded incl. preload':22s}: {statistics.median(with_preload):9.1f} samples/s over {samples} samples, "
              f"paired vs naive {amortized.text(2)}")
        best_video = max(("lerobot, workers=0", "lerobot, workers=2"), key=lambda k: statistics.median(rates[k]))
        versus = summarize_ratios(paired_ratios(rates[best_video], rates["lazy, workers=0"]))
        library = lerobot_library(Path(tmp) / "bench_lerobot", order[: samples // 4])
        print(f"LEROBOT atlas reader {statistics.median(rates[best_video]):.1f} samples/s ({best_video}), "
              f"{versus.median:.2f}x lazy HDF5 workers=0" + (f", {statistics.median(rates[best_video]) / library:.1f}x LeRobotDataset"
                                                            if library else ", LeRobotDataset: n/a"))
        default = summarize_ratios(paired_ratios(rates["lazy, workers=0"], base))
        same_workers = summarize_ratios(paired_ratios(rates["lazy, workers=2"], rates["naive, workers=2"]))
        print(f"HEADLINE atlas loader {default.median:.2f}x naive open-handle h5py DataLoader (the default path: lazy, "
              f"workers=0 vs workers=0; paired median of {default.count}, 95% bootstrap [{default.low:.2f}, {default.high:.2f}]; "
              f"workers=2 vs workers=2: {same_workers.median:.2f}x; load {load_average()})")


if __name__ == "__main__":
    main()
