"""Per-key statistics (mean, std, min, max, q01, q99) of state and action over chosen episodes."""

from __future__ import annotations

import numpy as np

from atlas.data.episodes import EpisodeSource


def compute_stats(source: EpisodeSource, episode_ids: list[int], keys: tuple[str, ...] = ("state", "action")) -> dict:
    stats = {}
    for key in keys:
        rows = np.concatenate(
            [source.read(e, key, np.arange(source.length(e))) for e in episode_ids], axis=0
        ).astype(np.float64)
        stats[key] = {
            "mean": rows.mean(0).tolist(),
            "std": rows.std(0).tolist(),
            "min": rows.min(0).tolist(),
            "max": rows.max(0).tolist(),
            "q01": np.quantile(rows, 0.01, axis=0).tolist(),
            "q99": np.quantile(rows, 0.99, axis=0).tolist(),
            "count": int(len(rows)),
        }
    return stats
