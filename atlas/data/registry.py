"""Dataset formats by name (`data.format`) and the one entry point the loop calls: `build_data`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from atlas.config.errors import ConfigError
from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.episodes import DatasetMeta, EpisodeSource, StepDataset
from atlas.data.errors import DataError
from atlas.data.normalize import Normalizer
from atlas.data.split import split_by_name
from atlas.data.stats import compute_stats, floor_std
from atlas.data.stats_cache import cached_stats
from atlas.data.transforms import BatchTransform
from atlas.registry import registrar

SourceBuilder = Callable[[DataConfig, int], EpisodeSource]
FORMATS: dict[str, SourceBuilder] = {}


register_format = registrar(FORMATS)


@register_format("synthetic")
def _synthetic(cfg: DataConfig, seed: int) -> EpisodeSource:
    from atlas.data.synthetic import make_synthetic_source

    return make_synthetic_source(cfg, seed)


def _load_builtin_formats() -> None:
    """Each built-in format registers itself on import (one module per format)."""
    from atlas.data.formats import aloha, lerobot, robomimic  # noqa: F401


def open_source(cfg: DataConfig, seed: int = 0) -> EpisodeSource:
    """The episodes of `data.format` at `data.path` (`auto`: detected from the path)."""
    _load_builtin_formats()
    if cfg.format == "auto":
        from atlas.data.detect import detect_format

        cfg = cfg.model_copy(update={"format": detect_format(cfg.path or "")})
    if cfg.format not in FORMATS:
        raise ConfigError(f"data.format: unknown format {cfg.format!r}; valid: {', '.join(sorted(FORMATS))}")
    return FORMATS[cfg.format](cfg, seed)


@dataclass
class DataBundle:
    train: StepDataset
    val: StepDataset | None
    normalizer: Normalizer
    meta: DatasetMeta
    log_lines: list[str]
    transform: BatchTransform  # normalize + state noise + image augmentation, from the config
    stats_source: str = ""  # "dataset" or "task:<name>" / "tasks:<a,b>": which episodes the statistics cover


def episode_names(source: EpisodeSource) -> list[str]:
    name = getattr(source, "episode_name", None)
    return [name(e) if name else f"episode_{e}" for e in range(source.num_episodes())]


def select_tasks(source: EpisodeSource, wanted: list[str] | None) -> tuple[list[str], list[int]]:
    """(trained task names, their episode indices); an unknown task name lists the dataset's tasks."""
    tasks = [source.info(e).task for e in range(source.num_episodes())]
    present = sorted(set(tasks))
    if not wanted:
        return present, list(range(len(tasks)))
    unknown = [t for t in wanted if t not in present]
    if unknown:
        raise DataError(f"data.tasks: {unknown} not in the dataset; its tasks: {', '.join(present)}")
    return sorted(set(wanted)), [e for e, t in enumerate(tasks) if t in set(wanted)]


def dataset_statistics(
    source: EpisodeSource, cfg: DataConfig, trained: list[str], selected: list[int]
) -> tuple[dict, str, list[str]]:
    """(stats, what they cover, log lines) following `data.stats` (auto: the task's own for a single-task run)."""
    everything = list(range(source.num_episodes()))
    mode = cfg.stats
    if mode == "dataset_meta":
        return dataset_meta_statistics(source, cfg)
    if mode in ("auto", "pretrained"):  # pretrained: these are replaced by the checkpoint's (models/pretrained.py)
        mode = "task" if len(trained) == 1 else "dataset"
    episodes = selected if mode == "task" else everything
    if mode == "task" and set(selected) == set(everything) and len(trained) > 1:
        label = "dataset"
    elif mode == "task":
        label = ("task:" if len(trained) == 1 else "tasks:") + ",".join(trained)
    else:
        label = "dataset"
    extra = {"selection": label, "keys": ["state", "action"], "reservoir": cfg.stats_reservoir_size}
    stats, where = cached_stats(
        source,
        episodes,
        extra,
        lambda: compute_stats(source, episodes, reservoir_size=cfg.stats_reservoir_size),
        cfg.stats_cache_dir,
    )
    lines = []
    if cfg.stats == "auto" and len(trained) == 1:
        lines.append(f"data: single-task run: using statistics of task {trained[0]}")
    lines.append(
        f"data: normalization {cfg.normalization_modes()} with statistics of {label} "
        f"({len(episodes)} episodes{', cached at ' + where if where else ''})"
    )
    lines += [f"data: warning: {m}" for m in floor_std(stats)]
    return stats, label, lines


def dataset_meta_statistics(source: EpisodeSource, cfg: DataConfig) -> tuple[dict, str, list[str]]:
    """`data.stats: dataset_meta`: the statistics the dataset ships with (LeRobot's meta/stats.json)."""
    read = getattr(source, "meta_stats", None)
    if read is None:
        raise ConfigError(f"data.stats: dataset_meta needs a dataset that ships statistics (format lerobot); "
                          f"format {cfg.format!r} has none: use auto, dataset or task")
    stats = read()
    needed = {"min_max": ("min", "max"), "quantile": ("q01", "q99"), "mean_std": ("mean", "std"), "none": ()}
    for key, mode in cfg.normalization_modes().items():
        missing = [name for name in needed[mode] if name not in stats[key]]
        if missing:
            raise DataError(f"{cfg.path}: the dataset's statistics of {key} lack {missing}, needed by "
                            f"data.normalization {mode}; use data.stats: dataset to compute them")
    lines = [f"data: normalization {cfg.normalization_modes()} with the dataset's own statistics (meta)"]
    lines += [f"data: warning: {m}" for m in floor_std(stats)]
    return stats, "dataset_meta", lines


@dataclass
class PreparedDataset:
    """One dataset up to the samples: its episodes, split, statistics and log lines."""

    source: EpisodeSource
    trained: list[str]
    train_ids: list[int]
    val_ids: list[int]
    stats: dict
    label: str
    lines: list[str]


def prepare_dataset(cfg: DataConfig, loading: DataLoadingConfig, seed: int) -> PreparedDataset:
    """Source → task selection → split by episode → statistics → (preload)."""
    source = open_source(cfg, seed)
    lines = list(getattr(source, "notes", []))
    trained, selected = select_tasks(source, cfg.tasks)
    names = episode_names(source)
    tasks_of = [source.info(e).task for e in range(source.num_episodes())]
    train_ids, val_ids = split_by_name(names, tasks_of, selected, cfg.val_ratio, cfg.val_episodes)
    if not train_ids:
        raise DataError(f"{cfg.path or cfg.format}: empty training split (all {len(selected)} episodes are validation)")
    stats, label, stat_lines = dataset_statistics(source, cfg, trained, selected)
    lines += stat_lines
    if loading.preload_data:
        from atlas.data.preload import preload

        source, line = preload(source, sorted(train_ids + val_ids), loading)
        lines.append(line)
    return PreparedDataset(source, trained, train_ids, val_ids, stats, label, lines)


def build_data(
    cfg: DataConfig,
    loading: DataLoadingConfig,
    action_horizon: int,
    seed: int,
    effective_batch_size: int | None = None,
) -> DataBundle:
    """One dataset (or `data.mixture`'s) → datasets, normalizer and batch transform for the loop."""
    if cfg.mixture:
        from atlas.data.mixture import build_mixture

        return build_mixture(cfg, loading, action_horizon, seed, effective_batch_size)
    p = prepare_dataset(cfg, loading, seed)
    lines = list(p.lines)
    train = StepDataset(p.source, p.train_ids, action_horizon, cfg.obs_horizon, p.trained)
    val = StepDataset(p.source, p.val_ids, action_horizon, cfg.obs_horizon, p.trained) if p.val_ids else None
    meta = meta_of(p.source, p.train_ids, p.trained)
    lines.append(
        f"data: format={cfg.format} tasks={len(p.trained)} episodes train={len(p.train_ids)} val={len(p.val_ids)} "
        f"sampling={cfg.sampling}"
    )
    lines.append(epoch_line(cfg, len(train), len(val) if val else 0, effective_batch_size))
    normalizer = Normalizer(p.stats, cfg.normalization_modes())
    transform = BatchTransform(normalizer, cfg.state_noise_snr, cfg.image_aug)
    return DataBundle(train, val, normalizer, meta, lines, transform, p.label)


def epoch_line(cfg: DataConfig, train_samples: int, val_samples: int, effective_batch_size: int | None) -> str:
    batch = effective_batch_size or cfg.batch_size
    per = "effective batch" if effective_batch_size else "data.batch_size, one process"
    return (f"data: samples/epoch={train_samples} steps/epoch={math.ceil(train_samples / batch)} "
            f"(batch {batch}: {per}) val samples={val_samples}")


def meta_of(source: EpisodeSource, train_ids: list[int], trained: list[str]) -> DatasetMeta:
    first = train_ids[0]
    image_size = None
    if source.cameras:
        image_size = tuple(source.read(first, f"image/{source.cameras[0]}", np.arange(1)).shape[1:3])
    instructions: dict[str, str] = {}
    for e in range(source.num_episodes()):
        info = source.info(e)
        if info.task in trained:
            instructions.setdefault(info.task, info.instruction)
    return DatasetMeta(
        state_dim=int(source.read(first, "state", np.arange(1)).shape[-1]),
        action_dim=int(source.read(first, "action", np.arange(1)).shape[-1]),
        cameras=list(source.cameras),
        image_size=image_size,
        tasks=list(trained),
        instructions=instructions,
    )
