"""Dataset formats by name (`data.format`) and the one entry point the loop calls: `build_data`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.episodes import DatasetMeta, EpisodeSource, StepDataset
from atlas.data.normalize import Normalizer
from atlas.data.stats import compute_stats

SourceBuilder = Callable[[DataConfig, int], EpisodeSource]
FORMATS: dict[str, SourceBuilder] = {}


def register_format(name: str) -> Callable[[SourceBuilder], SourceBuilder]:
    def wrap(builder: SourceBuilder) -> SourceBuilder:
        FORMATS[name] = builder
        return builder

    return wrap


@register_format("synthetic")
def _synthetic(cfg: DataConfig, seed: int) -> EpisodeSource:
    from atlas.data.synthetic import make_synthetic_source

    return make_synthetic_source(cfg, seed)


@dataclass
class DataBundle:
    train: StepDataset
    val: StepDataset | None
    normalizer: Normalizer
    meta: DatasetMeta
    log_lines: list[str]


def split_episodes(num_episodes: int, val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Validation split by episode, stable for a given seed and episode count."""
    order = np.random.default_rng([seed, 7919]).permutation(num_episodes)
    n_val = int(round(num_episodes * val_ratio))
    if val_ratio > 0 and n_val == 0 and num_episodes > 1:
        n_val = 1
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def build_data(cfg: DataConfig, loading: DataLoadingConfig, action_horizon: int, seed: int) -> DataBundle:
    if cfg.format not in FORMATS:
        raise ValueError(f"data.format: unknown format {cfg.format!r}; valid: {', '.join(sorted(FORMATS))}")
    source = FORMATS[cfg.format](cfg, seed)
    train_ids, val_ids = split_episodes(source.num_episodes(), cfg.val_ratio, seed)
    tasks = sorted({source.info(e).task for e in range(source.num_episodes())})
    train = StepDataset(source, train_ids, action_horizon, cfg.obs_horizon, tasks)
    val = StepDataset(source, val_ids, action_horizon, cfg.obs_horizon, tasks) if val_ids else None
    stats = compute_stats(source, train_ids)
    first = source.read(train_ids[0], "state", np.arange(1))
    action = source.read(train_ids[0], "action", np.arange(1))
    image_size = None
    if source.cameras:
        image_size = tuple(source.read(train_ids[0], f"image/{source.cameras[0]}", np.arange(1)).shape[1:3])
    meta = DatasetMeta(
        state_dim=int(first.shape[-1]),
        action_dim=int(action.shape[-1]),
        cameras=list(source.cameras),
        image_size=image_size,
        tasks=tasks,
        instructions={source.info(e).task: source.info(e).instruction for e in range(source.num_episodes())},
    )
    lines = [
        f"data: format={cfg.format} episodes train={len(train_ids)} val={len(val_ids)} "
        f"samples/epoch={len(train)} tasks={len(tasks)}"
    ]
    return DataBundle(train, val, Normalizer(stats), meta, lines)
