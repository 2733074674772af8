"""`data.format: lerobot`: a local LeRobot dataset folder (codebase_version v3.0 or v2.1), read with pyarrow
(parquet) and PyAV (mp4), never a hub.

Feature names map onto Atlas's keys: state = `observation.state` (or `data.obs_keys`, concatenated), action =
`action` (or `data.action_key`), cameras = every video feature (or `data.image_keys`, given as
`observation.images.front` or `front`), named by the part after `observation.images.`; the episode's task
string is both its task name and its instruction. The numeric columns of all data files are read into memory
once (a few bytes per frame); frames are decoded on demand: the frame of row r of an episode is the one at
`from_timestamp + timestamp[r]` in the camera's video (LeRobot's rule, tolerance 1e-4 s). Windows, clamping
and pad masks are `StepDataset`'s, which are LeRobot's `delta_timestamps` semantics for whole frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from atlas.data.config import DataConfig
from atlas.data.episodes import EpisodeRefs
from atlas.data.errors import DataError
from atlas.data.lerobot_meta import (
    IMAGE_PREFIX,
    LeRobotEpisode,
    LeRobotMeta,
    atlas_stats,
    camera_name,
    column,
    load_meta,
    meta_stats,
    read_parquet,
)
from atlas.data.registry import register_format
from atlas.data.video import DEFAULT_TOLERANCE_S, VideoPool


@dataclass
class LeRobotLayout:
    """Which features are the state (concatenated in order), the action and the cameras (name -> feature)."""

    state: list[str]
    action: str
    images: dict[str, str] = field(default_factory=dict)


def choose_layout(meta: LeRobotMeta, cfg: DataConfig) -> LeRobotLayout:
    features = meta.features
    info_path = os.path.join(meta.root, "meta", "info.json")

    def check(key: str, what: str) -> str:
        if key not in features:
            raise DataError(f"{info_path}: no feature {key!r} ({what}); features: {', '.join(features)}")
        return key

    state = [check(k, "data.obs_keys") for k in (cfg.obs_keys or ["observation.state"])]
    action = check(cfg.action_key or "action", "data.action_key")
    if cfg.image_keys is None:
        keys = meta.video_keys()
    else:
        keys = [check(k if k in features else IMAGE_PREFIX + k, "data.image_keys") for k in cfg.image_keys]
    for key in keys:
        if features[key].get("dtype") != "video":
            raise DataError(f"{info_path}: feature {key!r} has dtype {features[key].get('dtype')!r}; Atlas reads "
                            "cameras stored as video (images inside parquet are not supported yet)")
    return LeRobotLayout(state, action, {camera_name(k): k for k in keys})


class LeRobotSource(EpisodeRefs):
    """Episodes of one LeRobot folder; implements `EpisodeSource` (+ `read_batch`, `meta_stats`)."""

    def __init__(self, meta: LeRobotMeta, layout: LeRobotLayout, tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
        self.meta = meta
        self.layout = layout
        self.episodes: list[LeRobotEpisode] = meta.episodes
        self.cameras = list(layout.images)
        self.tolerance_s = tolerance_s
        self.cache_dir = os.path.join(meta.root, ".atlas_cache")  # statistics cache (LeRobot ignores the folder)
        self.notes: list[str] = [f"data: LeRobot {meta.version} dataset {meta.root}: {len(self.episodes)} episodes, "
                                 f"cameras {', '.join(self.cameras) or '(none)'}"]
        self._videos = VideoPool()
        self._load_rows()

    # -- the numeric columns, read once --------------------------------------------------------------
    def _load_rows(self) -> None:
        keys = [*self.layout.state, self.layout.action]
        columns = sorted({*keys, "episode_index", "frame_index", "timestamp"})
        parts: dict[str, list[np.ndarray]] = {"state": [], "action": [], "timestamp": []}
        starts, offset, tables = {}, 0, {}
        by_file: dict[str, list[LeRobotEpisode]] = {}
        for episode in self.episodes:
            by_file.setdefault(episode.path, []).append(episode)
        for path, members in by_file.items():
            table = tables[path] = read_parquet(path, columns)
            episode_col = column(table, "episode_index", path).astype(np.int64)
            frames = column(table, "frame_index", path).astype(np.int64)
            for episode in members:
                rows = np.flatnonzero(episode_col == episode.index)
                expected = np.arange(episode.length)
                if len(rows) != episode.length or (len(rows) and (np.any(np.diff(rows) != 1)
                                                                   or np.any(frames[rows] != expected))):
                    raise DataError(f"{path}: episode {episode.index} has {len(rows)} rows (frame_index "
                                    f"{frames[rows][:3].tolist()}...), its metadata says {episode.length} "
                                    "consecutive frames from 0")
                starts[episode.index] = offset + int(rows[0]) if len(rows) else offset
            parts["state"].append(np.concatenate(
                [column(table, k, path).reshape(len(table), -1).astype(np.float32) for k in self.layout.state], axis=1))
            parts["action"].append(column(table, self.layout.action, path).reshape(len(table), -1).astype(np.float32))
            parts["timestamp"].append(column(table, "timestamp", path).reshape(-1).astype(np.float64))
            offset += len(table)
        self._flat = {key: np.concatenate(values) for key, values in parts.items()}
        self._offsets = np.array([starts[e.index] for e in self.episodes], dtype=np.int64)

    # -- EpisodeSource -------------------------------------------------------------------------------
    def read(self, episode: int, key: str, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if key in ("state", "action", "timestamp"):
            return self._flat[key][self._offsets[episode] + rows]
        if key.startswith("image/") and key[6:] in self.layout.images:
            ref = self.episodes[episode].videos[self.layout.images[key[6:]]]
            times = ref.from_timestamp + self._flat["timestamp"][self._offsets[episode] + rows]
            return self._videos.get(ref.path).frames(times, self.tolerance_s)
        raise KeyError(f"unknown source key {key!r}; valid: state, action, " + ", ".join(f"image/{c}" for c in self.cameras))

    def read_batch(self, episodes: np.ndarray, key: str, rows: np.ndarray) -> np.ndarray:
        """One gather for state/action; frames window by window (each decoded forward from its keyframe)."""
        if key in ("state", "action", "timestamp"):
            return self._flat[key][self._offsets[episodes][:, None] + rows]
        return np.stack([self.read(int(e), key, r) for e, r in zip(episodes, rows)])

    def meta_stats(self) -> dict:
        """The dataset's own statistics (`data.stats: dataset_meta`) in Atlas's {state, action} form."""
        where = os.path.join(self.meta.root, "meta")
        return atlas_stats(meta_stats(self.meta), self.layout.state, self.layout.action, where)


@register_format("lerobot")
def build_lerobot(cfg: DataConfig, seed: int) -> LeRobotSource:
    if not cfg.path:
        raise DataError("data.path is not set; point it at a LeRobot dataset folder (the one holding meta/info.json)")
    meta = load_meta(cfg.path)
    return LeRobotSource(meta, choose_layout(meta, cfg))
