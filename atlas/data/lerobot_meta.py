"""The metadata of a local LeRobot dataset folder, codebase_version v3.0 or v2.1 (v2.0 reads as v2.1).

v3.0: many episodes per parquet/mp4 file; `meta/episodes/chunk-*/file-*.parquet` gives each episode's data
file, its rows (`dataset_from_index`..`dataset_to_index`) and per camera its video file and
`from_timestamp`; `meta/tasks.parquet` has the task string as the (pandas) index.
v2.1: one parquet and one mp4 per episode (paths from `info.json`'s templates and `chunks_size`),
`meta/episodes.jsonl`, `meta/tasks.jsonl`, `meta/episodes_stats.jsonl`.

Both become a list of `LeRobotEpisode`; reading rows and frames is `atlas.data.formats.lerobot`'s job.
Nothing here contacts a hub.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from atlas.data.errors import DataError

IMAGE_PREFIX = "observation.images."
STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99")


def import_pyarrow():
    """pyarrow.parquet, or a DataError naming the extra that installs it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading or writing LeRobot datasets needs pyarrow: pip install 'atlas[lerobot]'") from None
    return pq


@dataclass
class VideoRef:
    path: str
    from_timestamp: float = 0.0


@dataclass
class LeRobotEpisode:
    """One episode: where its rows and frames are. `path` and `group` key the statistics cache."""

    index: int
    length: int
    task: str
    path: str  # its data parquet file
    videos: dict[str, VideoRef] = field(default_factory=dict)  # feature key -> video
    tasks: list[str] = field(default_factory=list)
    instruction: str = ""  # the LeRobot task string; `task` is Atlas's task name when meta/atlas.json has one
    name: str = ""

    def __post_init__(self) -> None:
        self.instruction = self.instruction or self.task
        self.name = self.name or f"episode_{self.index}"

    @property
    def group(self) -> str:
        return f"episode_{self.index}"


@dataclass
class LeRobotMeta:
    root: str
    version: str
    info: dict
    episodes: list[LeRobotEpisode]

    @property
    def fps(self) -> float:
        return float(self.info.get("fps", 0) or 0)

    @property
    def features(self) -> dict:
        return self.info.get("features", {})

    def video_keys(self) -> list[str]:
        return [k for k, v in self.features.items() if v.get("dtype") == "video"]


def camera_name(key: str) -> str:
    """`observation.images.front` -> `front` (the name Atlas and `atlas inspect` use)."""
    return key[len(IMAGE_PREFIX):] if key.startswith(IMAGE_PREFIX) else key


def read_json(path: str) -> dict:
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing (not a LeRobot dataset folder?)")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not valid JSON: {err}") from None


def read_jsonl(path: str) -> list[dict]:
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing (the v2.1 layout has meta/episodes.jsonl and meta/tasks.jsonl)")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as err:
                    raise DataError(f"{path}: line {number} is not JSON: {err}") from None
    return rows


def read_parquet(path: str, columns: list[str] | None = None):
    """A pyarrow table, or a DataError naming the file (missing, truncated, not parquet, no such column)."""
    pq = import_pyarrow()
    import pyarrow as pa

    if not os.path.isfile(path):
        raise DataError(f"{path}: parquet file missing")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError, KeyError) as err:
        raise DataError(f"{path}: cannot read parquet (truncated or missing columns {columns}): {err}") from None


def column(table, name: str, path: str) -> np.ndarray:
    """A column as numpy, rows x values ([n] for scalars, [n, d] for fixed or equal-length lists)."""
    if name not in table.column_names:
        raise DataError(f"{path}: no column {name!r}; columns: {', '.join(table.column_names)}")
    import pyarrow.types as types

    data = table.column(name).combine_chunks()
    n = len(data)
    if types.is_list(data.type) or types.is_large_list(data.type) or types.is_fixed_size_list(data.type):
        values = data.flatten().to_numpy(zero_copy_only=False)
        if n and len(values) % n:
            raise DataError(f"{path}: column {name!r} has rows of different lengths")
        return values.reshape(n, -1)
    return data.to_numpy(zero_copy_only=False)


def _format(template: str, path: str, **values) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as err:
        raise DataError(f"{path}: path template {template!r} cannot be filled: {err}") from None


# -- v3.0 ---------------------------------------------------------------------------------------------
def _tasks_v30(root: str) -> dict[int, str]:
    path = os.path.join(root, "meta", "tasks.parquet")
    table = read_parquet(path)
    names = [c for c in table.column_names if c != "task_index"]
    task_column = "task" if "task" in names else (names[0] if names else None)
    if task_column is None or "task_index" not in table.column_names:
        raise DataError(f"{path}: expected a task_index column and the task strings (pandas index); "
                        f"columns: {', '.join(table.column_names)}")
    return dict(zip(column(table, "task_index", path).tolist(), table.column(task_column).to_pylist()))


def _episodes_v30(root: str, info: dict) -> list[LeRobotEpisode]:
    info_path = os.path.join(root, "meta", "info.json")
    files = sorted(glob.glob(os.path.join(root, "meta", "episodes", "chunk-*", "file-*.parquet")))
    if not files:
        raise DataError(f"{os.path.join(root, 'meta', 'episodes')}: no chunk-*/file-*.parquet episode metadata")
    data_template = info.get("data_path") or "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    video_template = info.get("video_path") or "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    video_keys = [k for k, v in info.get("features", {}).items() if v.get("dtype") == "video"]
    _tasks_v30(root)  # checked here so a broken tasks file is named even if episodes carry their tasks
    episodes = []
    for path in files:
        table = read_parquet(path)
        names = table.column_names
        for row in table.to_pylist():
            def get(key: str, row=row, path=path, names=names):
                if key not in row:
                    raise DataError(f"{path}: no column {key!r}; columns: {', '.join(names)}")
                return row[key]

            index = int(get("episode_index"))
            data_path = os.path.join(root, _format(data_template, info_path, chunk_index=int(get("data/chunk_index")),
                                                   file_index=int(get("data/file_index"))))
            videos = {}
            for key in video_keys:
                video_path = os.path.join(root, _format(
                    video_template, info_path, video_key=key, chunk_index=int(get(f"videos/{key}/chunk_index")),
                    file_index=int(get(f"videos/{key}/file_index"))))
                videos[key] = VideoRef(video_path, float(get(f"videos/{key}/from_timestamp")))
            tasks = list(get("tasks") or [])
            episodes.append(LeRobotEpisode(index, int(get("length")), tasks[0] if tasks else "", data_path, videos, tasks))
    return sorted(episodes, key=lambda e: e.index)


def _stats_v30(root: str, episodes: list[LeRobotEpisode]) -> dict:
    return read_json(os.path.join(root, "meta", "stats.json"))


# -- v2.1 ---------------------------------------------------------------------------------------------
def _episodes_v21(root: str, info: dict) -> list[LeRobotEpisode]:
    info_path = os.path.join(root, "meta", "info.json")
    tasks_path = os.path.join(root, "meta", "tasks.jsonl")
    read_jsonl(tasks_path)
    chunks = int(info.get("chunks_size", 1000) or 1000)
    data_template = info.get("data_path") or "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    video_template = info.get("video_path") or "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    video_keys = [k for k, v in info.get("features", {}).items() if v.get("dtype") == "video"]
    path = os.path.join(root, "meta", "episodes.jsonl")
    episodes = []
    for row in read_jsonl(path):
        if "episode_index" not in row or "length" not in row:
            raise DataError(f"{path}: every line needs episode_index and length; got {sorted(row)}")
        index = int(row["episode_index"])
        chunk = index // chunks
        data_path = os.path.join(root, _format(data_template, info_path, episode_chunk=chunk, episode_index=index))
        videos = {key: VideoRef(os.path.join(root, _format(video_template, info_path, episode_chunk=chunk, video_key=key,
                                                           episode_index=index)))
                  for key in video_keys}
        tasks = list(row.get("tasks") or [])
        episodes.append(LeRobotEpisode(index, int(row["length"]), tasks[0] if tasks else "", data_path, videos, tasks))
    return sorted(episodes, key=lambda e: e.index)


def _stats_v21(root: str, episodes: list[LeRobotEpisode]) -> dict:
    """v2.1 keeps statistics per episode: merged here (count-weighted mean and variance, min/max)."""
    path = os.path.join(root, "meta", "episodes_stats.jsonl")
    if not os.path.isfile(path) and os.path.isfile(os.path.join(root, "meta", "stats.json")):
        return read_json(os.path.join(root, "meta", "stats.json"))  # v2.0
    per_episode = [row.get("stats", {}) for row in read_jsonl(path)]
    merged: dict[str, dict] = {}
    for key in per_episode[0] if per_episode else []:
        entries = [s[key] for s in per_episode if key in s]
        count = np.array([float(np.ravel(e.get("count", [1]))[0]) for e in entries])
        mean = np.stack([np.asarray(e["mean"], dtype=np.float64) for e in entries])
        var = np.stack([np.asarray(e["std"], dtype=np.float64) ** 2 for e in entries])
        w = (count / count.sum()).reshape(-1, *[1] * (mean.ndim - 1))
        total_mean = (w * mean).sum(0)
        total_var = (w * (var + mean**2)).sum(0) - total_mean**2
        merged[key] = {
            "mean": total_mean.tolist(), "std": np.sqrt(np.maximum(total_var, 0)).tolist(),
            "min": np.min([e["min"] for e in entries], axis=0).tolist(),
            "max": np.max([e["max"] for e in entries], axis=0).tolist(),
            "count": [int(count.sum())],
        }
    return merged


@dataclass
class VersionReader:
    episodes: Callable[[str, dict], list[LeRobotEpisode]]
    stats: Callable[[str, list[LeRobotEpisode]], dict]


VERSIONS: dict[str, VersionReader] = {
    "v3.0": VersionReader(_episodes_v30, _stats_v30),
    "v2.1": VersionReader(_episodes_v21, _stats_v21),
    "v2.0": VersionReader(_episodes_v21, _stats_v21),
}


def is_lerobot_folder(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "meta", "info.json"))


def load_meta(root: str) -> LeRobotMeta:
    """info.json, the episodes and where their rows and frames are; a DataError names the file at fault."""
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such folder (a LeRobot dataset is a folder with meta/info.json)")
    info_path = os.path.join(root, "meta", "info.json")
    info = read_json(info_path)
    version = str(info.get("codebase_version", ""))
    if version not in VERSIONS:
        raise DataError(f"{info_path}: codebase_version {version or '(none)'!r} is not supported; "
                        f"Atlas reads LeRobot {', '.join(sorted(VERSIONS))}")
    if not isinstance(info.get("features"), dict):
        raise DataError(f"{info_path}: no 'features' mapping")
    episodes = VERSIONS[version].episodes(root, info)
    if not episodes:
        raise DataError(f"{root}: empty dataset, no episodes in its metadata")
    _apply_atlas_names(root, episodes)
    return LeRobotMeta(root, version, info, episodes)


def _apply_atlas_names(root: str, episodes: list[LeRobotEpisode]) -> None:
    """Atlas's task and episode names from meta/atlas.json (written by Atlas's converter), where present."""
    path = os.path.join(root, "meta", "atlas.json")
    if not os.path.isfile(path):
        return
    names = {int(e["episode_index"]): e for e in read_json(path).get("episodes", []) if "episode_index" in e}
    for episode in episodes:
        entry = names.get(episode.index)
        if entry:
            episode.task = str(entry.get("task") or episode.task)
            episode.name = str(entry.get("name") or episode.name)


def meta_stats(meta: LeRobotMeta) -> dict:
    """The dataset's own statistics per feature (meta/stats.json, or v2.1's per-episode ones merged)."""
    return VERSIONS[meta.version].stats(meta.root, meta.episodes)


def atlas_stats(raw: dict, state_keys: list[str], action_key: str, path: str) -> dict:
    """LeRobot per-feature statistics -> Atlas's {state: {...}, action: {...}} (state features concatenated)."""
    out = {}
    for name, keys in (("state", state_keys), ("action", [action_key])):
        missing = [k for k in keys if k not in raw]
        if missing:
            raise DataError(f"{path}: no statistics for {missing}; it has: {', '.join(sorted(raw))}")
        entry = {}
        for stat in STAT_NAMES:
            if all(stat in raw[k] for k in keys):
                entry[stat] = np.concatenate([np.ravel(np.asarray(raw[k][stat], dtype=np.float64)) for k in keys]).tolist()
        entry["count"] = int(np.ravel(raw[keys[0]].get("count", [0]))[0])
        out[name] = entry
    return out
