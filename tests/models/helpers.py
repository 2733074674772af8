"""Small builders shared by the model tests (real parts, tiny sizes)."""

from __future__ import annotations

import torch

import atlas.models  # noqa: F401  (breaks the config import cycle)
from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.config import ModelConfig
from atlas.models.registry import build_policy


def meta(state_dim: int = 8, action_dim: int = 4, cameras: int = 0, image: int = 32, tasks: int = 2) -> DatasetMeta:
    names = [f"task{i}" for i in range(tasks)]
    return DatasetMeta(
        state_dim=state_dim,
        action_dim=action_dim,
        cameras=[f"cam{i}" for i in range(cameras)],
        image_size=(image, image) if cameras else None,
        tasks=names,
        instructions={n: f"do synthetic task number {i}" for i, n in enumerate(names)},
    )


def batch(m: DatasetMeta, horizon: int, b: int = 4, steps: int = 1, image: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {
        "state": torch.randn(b, steps, m.state_dim, generator=g),
        "action": torch.randn(b, horizon, m.action_dim, generator=g),
        "action_mask": torch.ones(b, horizon, dtype=torch.bool),
        "instruction": [m.instructions[m.tasks[i % len(m.tasks)]] for i in range(b)],
        "task_index": torch.arange(b) % len(m.tasks),
    }
    out["action_mask"][0, horizon // 2 :] = False
    if m.cameras:
        out["images"] = torch.rand(b, steps, len(m.cameras), 3, image, image, generator=g)
    return out


def policy(m: DatasetMeta, **fields):
    return build_policy(ModelConfig(**fields), m, Normalizer({}))
