"""Episodes → (episode, t) samples: action chunks with a pad mask, observation history, instruction.

A format only has to provide an `EpisodeSource` (how to read a window of one episode); `StepDataset`
turns any source into training samples, so chunking, padding and history are written once.

Sample keys (numpy, collated by the DataLoader):
  state        float32 [obs_horizon, S]          raw (the batch transform normalizes)
  images       uint8   [obs_horizon, N, 3, H, W] present only when the source has cameras
  action       float32 [action_horizon, A]       raw; rows past the episode end repeat the last action
  action_mask  bool    [action_horizon]          False past the episode end (the loss ignores those rows)
  instruction  str;  task_index int;  episode_index int;  frame_index int
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from torch.utils.data import Dataset


@dataclass
class EpisodeInfo:
    task: str
    instruction: str


@dataclass
class DatasetMeta:
    """What a policy needs to know about the data to build itself."""

    state_dim: int
    action_dim: int
    cameras: list[str] = field(default_factory=list)
    image_size: tuple[int, int] | None = None
    tasks: list[str] = field(default_factory=list)
    instructions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "cameras": list(self.cameras),
            "image_size": list(self.image_size) if self.image_size else None,
            "tasks": list(self.tasks),
            "instructions": dict(self.instructions),
        }

    @classmethod
    def from_dict(cls, data: dict) -> DatasetMeta:
        size = data.get("image_size")
        return cls(
            state_dim=data["state_dim"],
            action_dim=data["action_dim"],
            cameras=list(data.get("cameras", [])),
            image_size=tuple(size) if size else None,
            tasks=list(data.get("tasks", [])),
            instructions=dict(data.get("instructions", {})),
        )


class EpisodeRefs:
    """The EpisodeSource accessors of a source that lists its episodes in `self.episodes` (records with `length`,
    `task`, `instruction`, `name`): the HDF5 and LeRobot readers share them."""

    episodes: list

    def num_episodes(self) -> int:
        return len(self.episodes)

    def length(self, episode: int) -> int:
        return self.episodes[episode].length

    def info(self, episode: int) -> EpisodeInfo:
        ref = self.episodes[episode]
        return EpisodeInfo(task=ref.task, instruction=ref.instruction)

    def episode_name(self, episode: int) -> str:
        return self.episodes[episode].name


class EpisodeSource(Protocol):
    """Read access to a set of episodes; implementations open files lazily (after a worker forks)."""

    cameras: list[str]

    def num_episodes(self) -> int: ...

    def length(self, episode: int) -> int: ...

    def info(self, episode: int) -> EpisodeInfo: ...

    def read(self, episode: int, key: str, rows: np.ndarray) -> np.ndarray:
        """Rows of `state`, `action` or `image/<camera>` (uint8 H×W×3) at the given time indices."""
        ...


class ArraySource:
    """Episodes held in memory (synthetic data, preloaded files), laid end to end per key so that a batch is one
    fancy index (`read_batch`); each episode's arrays are views into those, so nothing is stored twice."""

    def __init__(self, episodes: list[dict[str, np.ndarray]], infos: list[EpisodeInfo], cameras: list[str]):
        self.infos = infos
        self.cameras = cameras
        keys = list(episodes[0]) if episodes else []
        self._lay_out({key: np.concatenate([episode[key] for episode in episodes]) for key in keys},
                      [len(episode["action"]) for episode in episodes])

    def _lay_out(self, flat: dict[str, np.ndarray], lengths: list[int]) -> None:
        """Keep `flat` (each key's rows, episode after episode) and every episode as views into it. Done at
        construction, before any DataLoader worker forks, so workers share these pages instead of copying."""
        self._flat = flat
        self._offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.episodes = [{key: values[start:stop] for key, values in flat.items()}
                         for start, stop in zip(self._offsets[:-1], self._offsets[1:])]

    def num_episodes(self) -> int:
        return len(self.episodes)

    def length(self, episode: int) -> int:
        return len(self.episodes[episode]["action"])

    def info(self, episode: int) -> EpisodeInfo:
        return self.infos[episode]

    def read(self, episode: int, key: str, rows: np.ndarray) -> np.ndarray:
        return self.episodes[episode][key][rows]

    def read_batch(self, episodes: np.ndarray, key: str, rows: np.ndarray) -> np.ndarray:
        """`read(episodes[i], key, rows[i])` for every i (rows [B, k], inside their episode) as one index."""
        return self._flat[key][self._offsets[episodes][:, None] + rows]


class StepDataset(Dataset):
    """Every (episode, t) of the chosen episodes as one sample."""

    def __init__(
        self,
        source: EpisodeSource,
        episode_ids: list[int],
        action_horizon: int,
        obs_horizon: int = 1,
        task_names: list[str] | None = None,
    ) -> None:
        self.source = source
        self.episode_ids = list(episode_ids)
        self.action_horizon = action_horizon
        self.obs_horizon = obs_horizon
        lengths = np.array([source.length(e) for e in self.episode_ids], dtype=np.int64)
        self.lengths = lengths
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
        self.task_names = task_names or sorted({source.info(e).task for e in self.episode_ids})
        self._labels: dict[int, tuple[str, int]] = {}

    @property
    def episode_ranges(self) -> list[tuple[int, int]]:
        """(first flat index, length) per episode, for episode-aware samplers."""
        return [(int(s), int(n)) for s, n in zip(self.starts, self.lengths)]

    def __len__(self) -> int:
        return int(self.lengths.sum())

    def locate(self, index: int) -> tuple[int, int]:
        """Flat sample index → (position in episode_ids, t)."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range [0, {len(self)})")
        slot = int(np.searchsorted(self.starts, index, side="right") - 1)
        return slot, int(index - self.starts[slot])

    def __getitem__(self, index: int) -> dict:
        self.locate(int(index))  # range check with its message
        return self.__getitems__([int(index)])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """The samples at `indices`, in order. The DataLoader passes a whole micro-batch here, so windows are
        computed for the batch at once and each key is read in one gather (`_gather`), several times faster
        than sample by sample (benchmarks/RESULTS.md, "batched reads")."""
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        outside = (flat < 0) | (flat >= len(self))
        if outside.any():
            raise IndexError(f"sample {int(flat[outside][0])} out of range [0, {len(self)})")
        slots = np.searchsorted(self.starts, flat, side="right") - 1
        t = flat - self.starts[slots]
        last = self.lengths[slots][:, None] - 1
        history = np.clip(t[:, None] + np.arange(1 - self.obs_horizon, 1), 0, last)
        future = t[:, None] + np.arange(self.action_horizon)
        episodes = np.asarray(self.episode_ids, dtype=np.int64)[slots]
        state = self._gather(episodes, "state", history).astype(np.float32, copy=False)
        action = self._gather(episodes, "action", np.minimum(future, last)).astype(np.float32, copy=False)
        masks = future <= last
        images = None
        for n, cam in enumerate(self.source.cameras):  # written into one [B, T, N, 3, H, W] array: no temporaries
            frames = self._gather(episodes, f"image/{cam}", history)
            if images is None:
                images = np.empty((*frames.shape[:2], len(self.source.cameras), 3, *frames.shape[2:4]), frames.dtype)
            images[:, :, n] = frames.transpose(0, 1, 4, 2, 3)
        samples = []
        for i, episode in enumerate(episodes.tolist()):
            instruction, task_index = self._episode_labels(episode)
            sample = {"state": state[i], "action": action[i], "action_mask": masks[i], "instruction": instruction,
                      "task_index": task_index, "episode_index": episode, "frame_index": int(t[i])}
            if images is not None:
                sample["images"] = images[i]
            samples.append(sample)
        return samples

    def _gather(self, episodes: np.ndarray, key: str, rows: np.ndarray) -> np.ndarray:
        """`source.read(episodes[i], key, rows[i])` stacked over i: one index where the source holds its
        episodes in memory (`read_batch`), else one read per sample (a window is one contiguous slice of a
        file; grouping a batch's windows by episode was slower with h5py, see benchmarks/RESULTS.md)."""
        read_batch = getattr(self.source, "read_batch", None)
        if read_batch is not None:
            return read_batch(episodes, key, rows)
        return np.stack([self.source.read(int(e), key, r) for e, r in zip(episodes, rows)])

    def _episode_labels(self, episode: int) -> tuple[str, int]:
        """(instruction, task index) of an episode, cached (a source may build its info per call)."""
        if episode not in self._labels:
            info = self.source.info(episode)
            task_index = self.task_names.index(info.task) if info.task in self.task_names else -1
            self._labels[episode] = (info.instruction, task_index)
        return self._labels[episode]
