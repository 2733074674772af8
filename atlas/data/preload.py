"""`data_loading.preload_data`: read (and decode) every episode into memory once, so training never
touches the files again; `use_compression` keeps images as JPEG bytes (about 10x smaller, decoded per
sample). The memory is estimated first and preloading refuses above `preload_max_gb` (default: half of
the memory available now) with a message saying what to change.
"""

from __future__ import annotations

import os

import numpy as np

from atlas.data.config import DataLoadingConfig
from atlas.data.episodes import ArraySource, EpisodeSource
from atlas.data.errors import DataError
from atlas.data.images import as_bytes, decode_jpeg, encode_jpeg

JPEG_RATIO_GUESS = 0.1  # JPEG q95 of robot camera frames is typically 5-15% of the raw bytes


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None elsewhere."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def estimate_bytes(source: EpisodeSource, episode_ids: list[int], compressed: bool) -> int:
    """Bytes the preloaded episodes will take (vectors exact, images exact raw or a JPEG-ratio guess)."""
    first = episode_ids[0]
    row = source.read(first, "state", np.arange(1)).nbytes + source.read(first, "action", np.arange(1)).nbytes
    steps = sum(source.length(e) for e in episode_ids)
    frame = sum(source.read(first, f"image/{cam}", np.arange(1)).nbytes for cam in source.cameras)
    per_frame = frame * (JPEG_RATIO_GUESS if compressed else 1.0)
    return int(steps * (row + per_frame))


class PreloadedSource(ArraySource):
    """In-memory episodes; images either decoded arrays or lists of JPEG bytes."""

    def __init__(self, flat: dict[str, np.ndarray], lengths: list[int], infos, cameras, names: list[str],
                 jpeg: list[dict[str, list[bytes]]] | None):
        """`flat`: each key's rows of every episode end to end (filled in place by `preload`, no second copy)."""
        self.infos = infos
        self.cameras = cameras
        self._lay_out(flat, lengths)
        self.names = names
        self.jpeg = jpeg

    def episode_name(self, episode: int) -> str:
        return self.names[episode]

    def read(self, episode: int, key: str, rows: np.ndarray) -> np.ndarray:
        if self.jpeg is not None and key.startswith("image/"):
            frames = self.jpeg[episode][key[6:]]
            return np.stack([decode_jpeg(frames[int(r)]) for r in rows])
        return super().read(episode, key, rows)

    def read_batch(self, episodes: np.ndarray, key: str, rows: np.ndarray) -> np.ndarray:
        if self.jpeg is not None and key.startswith("image/"):
            return np.stack([self.read(int(e), key, r) for e, r in zip(episodes, rows)])
        return super().read_batch(episodes, key, rows)


def _episode_jpegs(source: EpisodeSource, episode: int, camera: str) -> list[bytes]:
    """JPEG bytes of every frame: copied as stored when the file already holds JPEG, else encoded."""
    from atlas.data.hdf5source import HDF5Source, is_encoded

    if isinstance(source, HDF5Source):
        dataset = source._dataset(source.episodes[episode], source.layout.images[camera])
        if is_encoded(dataset) and not source.layout.upside_down:  # turned frames must be decoded to turn
            return [as_bytes(v) for v in dataset[()]]
    frames = source.read(episode, f"image/{camera}", np.arange(source.length(episode)))
    return [encode_jpeg(f) for f in frames]


def preload(source: EpisodeSource, episode_ids: list[int], loading: DataLoadingConfig) -> tuple[PreloadedSource, str]:
    """All episodes of `source` in memory (episode ids unchanged; unlisted episodes stay empty stubs)."""
    need = estimate_bytes(source, episode_ids, loading.use_compression)
    if loading.preload_max_gb is not None:
        limit, why = int(loading.preload_max_gb * 1e9), f"data_loading.preload_max_gb={loading.preload_max_gb}"
    else:
        free = available_memory_bytes()
        limit = free // 2 if free else None
        why = "half of the available memory" + (f" ({free / 1e9:.1f} GB)" if free else "")
    if limit is not None and need > limit:
        hint = "" if loading.use_compression or not source.cameras else ", set data_loading.use_compression: true"
        raise DataError(
            f"preload_data: the dataset needs about {need / 1e9:.2f} GB in memory per process, more than the "
            f"limit of {limit / 1e9:.2f} GB ({why}); set data_loading.preload_data: false to read lazily{hint}, "
            "or raise data_loading.preload_max_gb"
        )
    wanted = set(episode_ids)
    lengths = [source.length(e) if e in wanted else 0 for e in range(source.num_episodes())]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    keys = ["state", "action"] + ([] if loading.use_compression else [f"image/{cam}" for cam in source.cameras])
    flat: dict[str, np.ndarray] = {}
    jpeg, infos, names = [] if loading.use_compression else None, [], []
    for e in range(source.num_episodes()):
        infos.append(source.info(e))
        names.append(getattr(source, "episode_name", lambda i: f"episode_{i}")(e))
        for key in keys:  # written in place: no second copy to concatenate
            values = source.read(e, key, np.arange(lengths[e]))
            if key not in flat:
                flat[key] = np.empty((int(offsets[-1]), *values.shape[1:]), dtype=values.dtype)
            flat[key][offsets[e]:offsets[e + 1]] = values
        if jpeg is not None:
            jpeg.append({cam: _episode_jpegs(source, e, cam) if e in wanted else [] for cam in source.cameras})
    preloaded = PreloadedSource(flat, lengths, infos, list(source.cameras), names, jpeg)
    mode = "JPEG in memory" if jpeg is not None else "decoded"
    return preloaded, f"data: preloaded {len(wanted)} episodes ({mode}), about {need / 1e9:.2f} GB per process (pid {os.getpid()})"
