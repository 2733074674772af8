"""Seeded synthetic episodes with the shapes of real ones, so the loop is testable without files.

Actions are a fixed task-dependent linear function of the state plus a little noise, so a policy can
learn them and a falling loss means something.
"""

from __future__ import annotations

import os
import time

import numpy as np

from atlas.data.config import DataConfig
from atlas.data.episodes import ArraySource, EpisodeInfo
from atlas.engine.faults import slow_read_seconds


class SlowReadSource(ArraySource):
    """The synthetic episodes read `delay_s` slower per sample (ATLAS_INJECT_SLOW_READ_MS, a test hook):
    the delay sits in the reads the loader makes, as a slow disk or decoder would."""

    def __init__(self, episodes: list[dict[str, np.ndarray]], infos: list[EpisodeInfo], cameras: list[str],
                 delay_s: float) -> None:
        super().__init__(episodes, infos, cameras)
        self.delay_s = delay_s

    def read(self, episode: int, key: str, rows: np.ndarray) -> np.ndarray:
        if key == "action":  # one delay per sample, whatever the keys
            time.sleep(self.delay_s)
        return super().read(episode, key, rows)

    def read_batch(self, episodes: np.ndarray, key: str, rows: np.ndarray) -> np.ndarray:
        if key == "action":
            time.sleep(self.delay_s * len(episodes))
        return super().read_batch(episodes, key, rows)


def make_synthetic_source(cfg: DataConfig, seed: int) -> ArraySource:
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(cfg.num_tasks, cfg.state_dim, cfg.action_dim)) / np.sqrt(cfg.state_dim)
    cameras = [f"cam{i}" for i in range(cfg.num_cameras)] if cfg.image_size > 0 else []
    episodes, infos = [], []
    for e in range(cfg.num_episodes):
        task = e % cfg.num_tasks
        spread = max(1, cfg.episode_length // 4)
        length = int(rng.integers(cfg.episode_length - spread, cfg.episode_length + spread + 1))
        length = max(2, length)
        state = np.cumsum(rng.normal(scale=0.3, size=(length, cfg.state_dim)), axis=0).astype(np.float32)
        action = np.tanh(state @ weights[task]) + 0.01 * rng.normal(size=(length, cfg.action_dim))
        episode = {"state": state, "action": action.astype(np.float32)}
        for cam in cameras:
            base = rng.integers(0, 256, size=(1, cfg.image_size, cfg.image_size, 3))
            episode[f"image/{cam}"] = np.repeat(base, length, axis=0).astype(np.uint8)
        episodes.append(episode)
        infos.append(EpisodeInfo(task=f"task{task}", instruction=f"do synthetic task number {task}"))
    delay = slow_read_seconds(int(os.environ.get("RANK", "0")))
    return SlowReadSource(episodes, infos, cameras, delay) if delay else ArraySource(episodes, infos, cameras)
