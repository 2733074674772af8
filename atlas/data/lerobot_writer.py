"""Writes Atlas episodes as a LeRobot dataset folder: codebase_version v3.0 (default) or the v2.1 layout.

v3.0: every episode in `data/chunk-000/file-000.parquet` and, per camera, one
`videos/observation.images.<camera>/chunk-000/file-000.mp4` (episode e's frames from `from_timestamp`), with
`meta/info.json`, `meta/stats.json`, `meta/tasks.parquet` (the task string as the pandas index, written
without pandas) and `meta/episodes/chunk-000/file-000.parquet` (offsets, video timestamps, per-episode
statistics). v2.1: one parquet and one mp4 per episode, `meta/episodes.jsonl`, `tasks.jsonl`,
`episodes_stats.jsonl`. Both are what LeRobot's own code writes for these versions (one file per chunk
here: Atlas's datasets stay far below LeRobot's 100 MB / 200 MB file limits).

LeRobot has one string per episode, its task: Atlas writes the instruction there. `meta/atlas.json` keeps
Atlas's task names and episode names (and the collection record), so a dataset written by Atlas reads back
through Atlas with the same tasks; LeRobot ignores that file.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from atlas.data.errors import DataError
from atlas.data.lerobot_meta import IMAGE_PREFIX, import_pyarrow
from atlas.data.video import VideoWriter

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
LAYOUTS = {
    "v3.0": {
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
    },
    "v2.1": {
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    },
}


def feature_stats(values: np.ndarray) -> dict:
    """LeRobot's per-feature statistics of rows [N, d] (lists of d values; count as [N])."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = {"min": values.min(0).tolist(), "max": values.max(0).tolist(), "mean": values.mean(0).tolist(),
           "std": values.std(0).tolist(), "count": [int(len(values))]}
    out.update({name: np.quantile(values, q, axis=0).tolist() for name, q in QUANTILES.items()})
    return out


def image_stats(frames: np.ndarray) -> dict:
    """Per-channel statistics of uint8 [T, H, W, 3] frames in [0, 1], shaped [3, 1, 1] as LeRobot stores them."""
    pixels = np.asarray(frames[:, ::2, ::2], dtype=np.float64).reshape(-1, 3) / 255.0
    flat = feature_stats(pixels)
    return {k: ([int(len(frames))] if k == "count" else [[[v]] for v in flat[k]]) for k in flat}


def merge_stats(parts: list[dict]) -> dict:
    """Statistics of several episodes' rows from theirs: count-weighted mean/variance, min/max, and the
    count-weighted mean of the quantiles (LeRobot's own approximation when it aggregates)."""
    counts = np.array([p["count"][0] for p in parts], dtype=np.float64)
    w = counts / counts.sum()
    arr = {k: [np.asarray(p[k], dtype=np.float64) for p in parts] for k in parts[0] if k != "count"}
    shape = (-1,) + (1,) * arr["mean"][0].ndim
    mean = (w.reshape(shape) * np.stack(arr["mean"])).sum(0)
    second = (w.reshape(shape) * (np.stack(arr["std"]) ** 2 + np.stack(arr["mean"]) ** 2)).sum(0)
    out = {"min": np.min(arr["min"], axis=0).tolist(), "max": np.max(arr["max"], axis=0).tolist(),
           "mean": mean.tolist(), "std": np.sqrt(np.maximum(second - mean**2, 0)).tolist(),
           "count": [int(counts.sum())]}
    out.update({q: (w.reshape(shape) * np.stack(arr[q])).sum(0).tolist() for q in QUANTILES if q in arr})
    return out


def _vector_array(values: np.ndarray):
    import pyarrow as pa

    values = np.asarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _hf_features(dims: dict[str, int]) -> dict:
    """The `huggingface` schema metadata LeRobot's parquet files carry (datasets' feature types)."""
    out = {key: {"feature": {"dtype": "float32", "_type": "Value"}, "length": d, "_type": "List"} for key, d in dims.items()}
    out["timestamp"] = {"dtype": "float32", "_type": "Value"}
    out.update({k: {"dtype": "int64", "_type": "Value"} for k in INDEX_COLUMNS[1:]})
    return {"info": {"features": out}}


class LeRobotWriter:
    """Appends episodes in the order given (episode_index 0, 1, ...); `close` writes the metadata."""

    def __init__(self, root: str, fps: int = 10, codec: str = "libsvtav1", version: str = "v3.0",
                 robot_type: str = "atlas", overwrite: bool = False, env_args: dict | None = None) -> None:
        import_pyarrow()
        if version not in LAYOUTS:
            raise DataError(f"LeRobot layout {version!r} cannot be written; valid: {', '.join(LAYOUTS)}")
        if os.path.exists(root):
            if not overwrite and (not os.path.isdir(root) or os.listdir(root)):
                raise DataError(f"{root}: exists and is not empty (pass --overwrite to replace it)")
            shutil.rmtree(root) if os.path.isdir(root) else os.remove(root)
        self.root, self.fps, self.codec, self.version, self.robot_type = root, int(fps), codec, version, robot_type
        self.rows: dict[str, list[np.ndarray]] = {}  # v3.0: every episode's columns until close
        self.episodes: list[dict] = []
        self.tasks: dict[str, int] = {}
        self.atlas: list[dict] = []
        self.dims: dict[str, int] = {}
        self.cameras: dict[str, tuple[int, int]] = {}
        self.videos: dict[str, VideoWriter] = {}
        self.total = 0
        self.env_args = dict(env_args or {})

    # -- episodes --------------------------------------------------------------------------------
    def add(self, episode: dict) -> str:
        """episode: state [T, S], actions [T, A], images {camera: uint8 [T, H, W, 3]}, task, instruction, name?"""
        state = np.asarray(episode["state"], dtype=np.float32).reshape(len(episode["state"]), -1)
        actions = np.asarray(episode["actions"], dtype=np.float32).reshape(len(episode["actions"]), -1)
        length, index = len(actions), len(self.episodes)
        if len(state) != length:
            raise DataError(f"{self.root}: episode {index}: {len(state)} states but {length} actions")
        features = {"observation.state": state, "action": actions}
        self._check_dims(features, index)
        text = str(episode.get("instruction") or episode.get("task") or "")
        task_index = self.tasks.setdefault(text, len(self.tasks))
        columns = {
            **features,
            "timestamp": (np.arange(length) / self.fps).astype(np.float32),
            "frame_index": np.arange(length, dtype=np.int64),
            "episode_index": np.full(length, index, dtype=np.int64),
            "index": np.arange(self.total, self.total + length, dtype=np.int64),
            "task_index": np.full(length, task_index, dtype=np.int64),
        }
        stats = {key: feature_stats(values) for key, values in columns.items()}
        record = {"episode_index": index, "tasks": [text], "length": length,
                  "dataset_from_index": self.total, "dataset_to_index": self.total + length}
        for camera, frames in (episode.get("images") or {}).items():
            key = IMAGE_PREFIX + camera
            frames = np.asarray(frames, dtype=np.uint8)
            if len(frames) != length:
                raise DataError(f"{self.root}: episode {index}: camera {camera} has {len(frames)} frames, {length} actions")
            self.cameras.setdefault(key, tuple(frames.shape[1:3]))
            record.update(self._write_video(key, index, frames))
            stats[key] = image_stats(frames)
        if self.version == "v3.0":
            for key, values in columns.items():
                self.rows.setdefault(key, []).append(values)
        else:
            self._write_data(os.path.join(self.root, self._data_path(index)), columns)
        record["stats"] = stats
        self.episodes.append(record)
        self.atlas.append({"episode_index": index, "task": str(episode.get("task") or text),
                           "name": str(episode.get("name") or f"episode_{index}")})
        self.total += length
        return f"episode_{index}"

    def _check_dims(self, features: dict, index: int) -> None:
        for key, values in features.items():
            if self.dims.setdefault(key, values.shape[1]) != values.shape[1]:
                raise DataError(f"{self.root}: episode {index}: {key} has {values.shape[1]} values, "
                                f"earlier episodes {self.dims[key]}")

    def _data_path(self, index: int) -> str:
        if self.version == "v3.0":
            return LAYOUTS["v3.0"]["data_path"].format(chunk_index=0, file_index=0)
        return LAYOUTS["v2.1"]["data_path"].format(episode_chunk=index // 1000, episode_index=index)

    def _write_video(self, key: str, index: int, frames: np.ndarray) -> dict:
        if self.version == "v2.1":
            path = LAYOUTS["v2.1"]["video_path"].format(episode_chunk=index // 1000, video_key=key, episode_index=index)
            writer = VideoWriter(os.path.join(self.root, path), self.fps, self.codec)
            writer.write(frames)
            writer.close()
            return {}
        if key not in self.videos:
            path = LAYOUTS["v3.0"]["video_path"].format(video_key=key, chunk_index=0, file_index=0)
            self.videos[key] = VideoWriter(os.path.join(self.root, path), self.fps, self.codec)
        writer = self.videos[key]
        start = writer.frames_written
        writer.write(frames)
        return {f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                f"videos/{key}/from_timestamp": start / self.fps, f"videos/{key}/to_timestamp": writer.frames_written / self.fps}

    def _write_data(self, path: str, columns: dict[str, np.ndarray]) -> None:
        import pyarrow as pa

        pq = import_pyarrow()
        arrays = {k: (_vector_array(v) if v.ndim == 2 else pa.array(v)) for k, v in columns.items()}
        table = pa.table(arrays).replace_schema_metadata(
            {"huggingface": json.dumps(_hf_features({k: v.shape[1] for k, v in columns.items() if v.ndim == 2}))})
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(table, path)

    # -- metadata ---------------------------------------------------------------------------------
    def close(self, collection: dict | None = None) -> None:
        if not self.episodes:
            raise DataError(f"{self.root}: no episodes to write")
        for writer in self.videos.values():
            writer.close()
        meta = os.path.join(self.root, "meta")
        os.makedirs(meta, exist_ok=True)
        if self.version == "v3.0":
            self._write_data(os.path.join(self.root, self._data_path(0)),
                             {k: np.concatenate(v) for k, v in self.rows.items()})
            self._write_episodes_v30(os.path.join(meta, "episodes", "chunk-000", "file-000.parquet"))
            self._write_tasks_v30(os.path.join(meta, "tasks.parquet"))
            _write_json(os.path.join(meta, "stats.json"), merge_all([e["stats"] for e in self.episodes]))
        else:
            _write_jsonl(os.path.join(meta, "episodes.jsonl"),
                         [{k: e[k] for k in ("episode_index", "tasks", "length")} for e in self.episodes])
            _write_jsonl(os.path.join(meta, "tasks.jsonl"), [{"task_index": i, "task": t} for t, i in self.tasks.items()])
            _write_jsonl(os.path.join(meta, "episodes_stats.jsonl"),
                         [{"episode_index": e["episode_index"], "stats": e["stats"]} for e in self.episodes])
        _write_json(os.path.join(meta, "info.json"), self._info())
        _write_json(os.path.join(meta, "atlas.json"),
                    {"episodes": self.atlas, "collection": collection or {}, "env_args": self.env_args})

    def _write_episodes_v30(self, path: str) -> None:
        import pyarrow as pa

        pq = import_pyarrow()
        rows = []
        for e in self.episodes:
            row = {k: v for k, v in e.items() if k != "stats"}
            row.update({"data/chunk_index": 0, "data/file_index": 0})
            for key, entry in e["stats"].items():
                row.update({f"stats/{key}/{name}": value for name, value in entry.items()})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            rows.append(row)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), path)

    def _write_tasks_v30(self, path: str) -> None:
        """tasks.parquet as pandas writes a frame indexed by the task string (LeRobot reads it with pandas)."""
        import pyarrow as pa

        pq = import_pyarrow()
        names = list(self.tasks)
        table = pa.table({"task_index": pa.array([self.tasks[t] for t in names], pa.int64()),
                          "__index_level_0__": pa.array(names, pa.large_string())})
        pandas_meta = {
            "index_columns": ["__index_level_0__"],
            "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                                "metadata": {"encoding": "UTF-8"}}],
            "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                         "numpy_type": "int64", "metadata": None},
                        {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                         "numpy_type": "object", "metadata": None}],
            "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3",
        }
        pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), path)

    def _info(self) -> dict:
        features: dict = {}
        for key, dim in self.dims.items():
            prefix = "s" if key == "observation.state" else "a"
            features[key] = {"dtype": "float32", "shape": [dim], "names": [f"{prefix}{i}" for i in range(dim)]}
        codec_name = {"libsvtav1": "av1", "libx264": "h264", "libx264rgb": "h264", "libx265": "hevc"}.get(self.codec, self.codec)
        for key, (height, width) in self.cameras.items():
            features[key] = {
                "dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
                "info": {"video.height": height, "video.width": width, "video.codec": codec_name,
                         "video.pix_fmt": "rgb24" if self.codec == "libx264rgb" else "yuv420p",
                         "video.is_depth_map": False, "video.fps": self.fps, "video.channels": 3, "has_audio": False},
            }
        features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
        features.update({k: {"dtype": "int64", "shape": [1], "names": None} for k in INDEX_COLUMNS[1:]})
        info = {"codebase_version": self.version, "robot_type": self.robot_type,
                "total_episodes": len(self.episodes), "total_frames": self.total, "total_tasks": len(self.tasks)}
        if self.version == "v3.0":
            info.update({"chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200})
        else:
            info.update({"total_videos": len(self.episodes) * len(self.cameras),
                         "total_chunks": (len(self.episodes) - 1) // 1000 + 1, "chunks_size": 1000})
        info.update({"fps": self.fps, "splits": {"train": f"0:{len(self.episodes)}"}, **LAYOUTS[self.version],
                     "features": features})
        if not self.cameras:
            info["video_path"] = None
        return info


def merge_all(per_episode: list[dict]) -> dict:
    return {key: merge_stats([s[key] for s in per_episode]) for key in per_episode[0]}


def _write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=4)


def _write_jsonl(path: str, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
