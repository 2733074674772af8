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
    """Episodes held in memory (synthetic data, preloaded files)."""

    def __init__(self, episodes: list[dict[str, np.ndarray]], infos: list[EpisodeInfo], cameras: list[str]):
        self.episodes = episodes
        self.infos = infos
        self.cameras = cameras

    def num_episodes(self) -> int:
        return len(self.episodes)

    def length(self, episode: int) -> int:
        return len(self.episodes[episode]["action"])

    def info(self, episode: int) -> EpisodeInfo:
        return self.infos[episode]

    def read(self, episode: int, key: str, rows: np.ndarray) -> np.ndarray:
        return self.episodes[episode][key][rows]


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
        slot, t = self.locate(int(index))
        episode = self.episode_ids[slot]
        length = int(self.lengths[slot])
        history = np.clip(np.arange(t - self.obs_horizon + 1, t + 1), 0, length - 1)
        future = np.arange(t, t + self.action_horizon)
        mask = future < length
        info = self.source.info(episode)
        sample = {
            "state": self.source.read(episode, "state", history).astype(np.float32),
            "action": self.source.read(episode, "action", np.minimum(future, length - 1)).astype(np.float32),
            "action_mask": mask,
            "instruction": info.instruction,
            "task_index": self.task_names.index(info.task) if info.task in self.task_names else -1,
            "episode_index": episode,
            "frame_index": t,
        }
        if self.source.cameras:
            frames = [self.source.read(episode, f"image/{cam}", history) for cam in self.source.cameras]
            sample["images"] = np.ascontiguousarray(np.stack(frames, axis=1).transpose(0, 1, 4, 2, 3))
        return sample
