"""Statistics cached on disk, keyed by a fingerprint of the dataset files (paths, sizes, mtimes), the
key layout and the episode selection (task), so a second run or `atlas stats` reads them instantly.

The cache sits beside the dataset in `.atlas_cache/`; when that folder is read-only it goes to
`data.stats_cache_dir` or `~/.cache/atlas/stats`. Writes are atomic (several ranks may race).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable

from atlas.data.episodes import EpisodeSource

STATS_VERSION = 1


def fingerprint(source: EpisodeSource, episode_ids: list[int], extra: dict) -> str | None:
    """Hash of what the statistics depend on; None for sources without files (synthetic data)."""
    episodes = getattr(source, "episodes", None)
    if not episodes or not hasattr(episodes[0], "path"):
        return None
    files = sorted({episodes[e].path for e in episode_ids})
    described = {
        "version": STATS_VERSION,
        "files": [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in files],
        "episodes": [f"{episodes[e].path}:{episodes[e].group}" for e in episode_ids],
        "layout": vars(source.layout) if hasattr(source, "layout") else None,
        **extra,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cache_dirs(source: EpisodeSource, user_dir: str | None) -> list[str]:
    """Candidate cache folders, in the order they are tried."""
    paths = [ref.path for ref in source.episodes]
    beside = getattr(source, "cache_dir", None) or os.path.join(
        os.path.commonpath([os.path.dirname(p) for p in paths]), ".atlas_cache")
    fallback = user_dir or os.path.join(os.path.expanduser("~"), ".cache", "atlas", "stats")
    return [beside, fallback]


def _writable(folder: str) -> bool:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def cached_stats(
    source: EpisodeSource,
    episode_ids: list[int],
    extra: dict,
    compute: Callable[[], dict],
    user_dir: str | None = None,
) -> tuple[dict, str | None]:
    """(statistics, where they were read from or written to); computes and stores them on a miss."""
    key = fingerprint(source, episode_ids, extra)
    if key is None:
        return compute(), None
    name = f"stats-{key}.json"
    folders = cache_dirs(source, user_dir)
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as handle:
                    return json.load(handle)["stats"], path
            except (OSError, ValueError, KeyError):
                pass  # a corrupt cache entry is recomputed
    stats = compute()
    for folder in folders:
        if _writable(folder):
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"fingerprint": key, "selection": extra, "stats": stats}, handle)
            os.replace(tmp, os.path.join(folder, name))
            return stats, os.path.join(folder, name)
    return stats, None
