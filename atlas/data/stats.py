"""Per-key statistics (mean, std, min, max, q01, q99) of state and action, computed in one streaming pass.

Mean and variance merge chunk by chunk (Chan et al.'s parallel update, float64), min/max are running,
and the quantiles come from a uniform reservoir sample of at most `reservoir_size` rows per key
(algorithm R, seeded, so repeatable): exact when the data has fewer rows, otherwise q01/q99 of a
uniform sample, whose rank error is about sqrt(q(1-q)/n) ≈ 0.03 percentile points at n = 100 000.
Memory is bounded by the reservoir, whatever the dataset size.
"""

from __future__ import annotations

import warnings

import numpy as np

from atlas.data.episodes import EpisodeSource
from atlas.data.normalize import STD_FLOOR

CHUNK_ROWS = 8192
STAT_COLUMNS = ("mean", "std", "min", "max", "q01", "q99")


class RunningStats:
    """Streaming mean/std/min/max and reservoir quantiles of rows of one key."""

    def __init__(self, reservoir_size: int = 100_000, seed: int = 0) -> None:
        self.reservoir_size = reservoir_size
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None
        self.reservoir: np.ndarray | None = None

    def update(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        n = len(rows)
        if n == 0:
            return
        mean, m2 = rows.mean(0), ((rows - rows.mean(0)) ** 2).sum(0)
        if self.mean is None:
            self.mean, self.m2, self.min, self.max = mean, m2, rows.min(0), rows.max(0)
            self.reservoir = np.empty((min(self.reservoir_size, 1024), rows.shape[1]))
        else:
            total = self.count + n
            delta = mean - self.mean
            self.mean = self.mean + delta * (n / total)
            self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
            self.min, self.max = np.minimum(self.min, rows.min(0)), np.maximum(self.max, rows.max(0))
        self._sample(rows)
        self.count += n

    def _sample(self, rows: np.ndarray) -> None:
        """Algorithm R, vectorized: row j (global) replaces slot r ~ U[0, j] when r < K."""
        k, seen = self.reservoir_size, self.count
        fill = max(0, min(k - seen, len(rows)))
        if fill:
            need = seen + fill
            if need > len(self.reservoir):
                grown = np.empty((min(k, max(need, 2 * len(self.reservoir))), rows.shape[1]))
                grown[:seen] = self.reservoir[:seen]
                self.reservoir = grown
            self.reservoir[seen:need] = rows[:fill]
        rest = rows[fill:]
        if len(rest):
            positions = np.arange(seen + fill, seen + len(rows))
            slots = self.rng.integers(0, positions + 1)
            keep = slots < k
            self.reservoir[slots[keep]] = rest[keep]

    def result(self) -> dict:
        if self.mean is None:
            raise ValueError("no rows: statistics of an empty selection")
        sample = self.reservoir[: min(self.count, self.reservoir_size)]
        return {
            "mean": self.mean.tolist(),
            "std": np.sqrt(self.m2 / self.count).tolist(),
            "min": self.min.tolist(),
            "max": self.max.tolist(),
            "q01": np.quantile(sample, 0.01, axis=0).tolist(),
            "q99": np.quantile(sample, 0.99, axis=0).tolist(),
            "count": int(self.count),
        }


def compute_stats(
    source: EpisodeSource,
    episode_ids: list[int],
    keys: tuple[str, ...] = ("state", "action"),
    reservoir_size: int = 100_000,
) -> dict:
    """Statistics per key over the given episodes, reading each episode in chunks."""
    out = {}
    for key in keys:
        running = RunningStats(reservoir_size, seed=0)
        for episode in episode_ids:
            length = source.length(episode)
            for start in range(0, length, CHUNK_ROWS):
                running.update(source.read(episode, key, np.arange(start, min(length, start + CHUNK_ROWS))))
        out[key] = running.result()
    return out


def _ranges(dims: np.ndarray) -> str:
    """[11, 12, 13, 29] → "11-13, 29" so a log line stays short."""
    parts, start = [], None
    for i, d in enumerate(dims):
        if start is None:
            start = d
        if i + 1 == len(dims) or dims[i + 1] != d + 1:
            parts.append(f"{start}" if start == d else f"{start}-{d}")
            start = None
    return ", ".join(parts)


def floor_std(stats: dict, floor: float = STD_FLOOR) -> list[str]:
    """Constant dimensions (std below `floor`) get std 1, in place, with one warning per key naming them.

    Dividing by the floor itself would turn any test-time deviation of a dimension that never moved in the
    demonstrations (e.g. Meta-World's unused second-object slots) into a value of a million; with std 1
    the dimension is only centred.
    """
    messages = []
    for key, entry in stats.items():
        std = np.asarray(entry["std"], dtype=np.float64)
        low = np.flatnonzero(std < floor)
        if len(low):
            messages.append(
                f"{key}[{_ranges(low)}]: {len(low)} constant dimension(s) (std < {floor:g}); centred only (std set to 1)"
            )
            entry["std"] = np.where(std < floor, 1.0, std).tolist()
    for message in messages:
        warnings.warn(message, stacklevel=2)
    return messages
