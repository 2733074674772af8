"""Config of the data pipeline: `data:` and `data_loading:` blocks."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from atlas.config.base import Section, switch_value

NORMALIZATION_MODES = ("mean_std", "min_max", "quantile", "none")


class ImageAugConfig(Section):
    """Batched augmentation on the training device (training only); `image_aug: true` turns on the defaults."""

    enabled: bool = Field(False, description="Apply random crop/resize and colour jitter to training images.")
    crop_scale: tuple[float, float] = Field(
        (0.8, 1.0), description="Area fraction of the random crop (resized back to the full image), as [min, max]."
    )
    crop_ratio: tuple[float, float] = Field((0.9, 1.1), description="Aspect-ratio range of the random crop.")
    brightness: float = Field(0.3, ge=0.0, description="Brightness factor drawn from [1-b, 1+b] (RDT: 0.3).")
    contrast: float = Field(0.4, ge=0.0, description="Contrast factor drawn from [1-c, 1+c] (RDT: 0.4).")
    saturation: float = Field(0.5, ge=0.0, description="Saturation factor drawn from [1-s, 1+s] (RDT: 0.5).")
    hue: float = Field(0.03, ge=0.0, le=0.5, description="Hue shift in turns drawn from [-h, h] (RDT: 0.03).")

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, value):
        """`image_aug: true` (or on/yes) turns the defaults on, `false` (or off/no) off."""
        switch = switch_value(value)
        return {"enabled": switch} if switch is not None else value


SHARED_BY_MIXTURE = ("mixture", "batch_size", "sampling", "obs_horizon")


class MixtureEntry(Section):
    """One dataset of `data.mixture`; any other `data.*` key given here overrides the top-level one for it."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, protected_namespaces=())

    path: str = Field(..., description="The dataset: HDF5 file or folder, or LeRobot folder.")
    format: str | None = Field(None, description="Its data.format (None: detected from the path).")
    weight: float = Field(1.0, gt=0, description="Relative share of the samples drawn from it (normalized over the mixture).")
    name: str | None = Field(None, description="Name in metrics (mixture/<name>) and `atlas eval --dataset` (default: the path's stem).")

    def overrides(self) -> dict:
        """The per-dataset data.* keys (everything besides path, format, weight, name)."""
        return dict(self.model_extra or {})


class DataConfig(Section):
    path: str | None = Field(
        None, description="HDF5 file or folder of files, or a LeRobot dataset folder; unused for `format: synthetic`."
    )
    format: str = Field("synthetic", description="Dataset format registry key: synthetic, robomimic, libero (LIBERO's "
                        "files: upright frames, 8-d state), aloha, lerobot.")
    batch_size: int = Field(
        8, gt=0, le=2**16, description="Micro-batch per device (per GPU/process), as in the seeds (at most 65536)."
    )
    sampling: Literal["all_steps", "random_episode"] = Field(
        "all_steps",
        description="all_steps: every (episode, t) once per epoch (seed 000); random_episode: RDT's episode-then-step draw.",
    )
    obs_horizon: int = Field(1, gt=0, description="Frames of observation history; t<0 repeats the first frame.")
    val_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of episodes held out for validation (split by episode).")
    val_episodes: list[int | str] | None = Field(
        None,
        description="Explicit validation episodes (overrides val_ratio): indices, or names like 'file_stem/demo_3' or 'demo_3'.",
    )
    tasks: list[str] | None = Field(None, description="Train only on these task names (None: all tasks in the data).")
    obs_keys: list[str] | None = Field(
        None,
        description="State datasets concatenated in this order (robomimic: keys under obs/; aloha: under observations/). "
        "None: robomimic every non-image obs key sorted by name, aloha qpos.",
    )
    image_keys: list[str] | None = Field(
        None,
        description="Camera datasets (robomimic: obs keys; aloha: names under observations/images). "
        "None: robomimic every uint8 obs of ndim 4, aloha every camera; [] for none.",
    )
    action_key: str | None = Field(None, description="Action dataset (None: robomimic 'actions', aloha 'action').")
    skip_bad_episodes: bool = Field(
        False, description="Drop episodes with mismatched lengths, NaN or missing keys (counted in the log) instead of failing."
    )
    normalization: str | dict[str, str] = Field(
        "mean_std",
        description="mean_std, min_max (min/max to [-1, 1]), quantile (q01/q99 to [-1, 1]) or none; "
        "one string for all, or per key group {state: ..., action: ...}.",
    )
    stats: Literal["auto", "dataset", "task", "dataset_meta", "pretrained"] = Field(
        "auto",
        description="Normalization statistics over the whole dataset or the trained tasks' episodes; "
        "auto: the task's own when the run trains a single task, else the dataset's; "
        "dataset_meta: the dataset's own (LeRobot meta/stats.json, or v2.1's per-episode statistics merged); "
        "pretrained: the model.pretrained checkpoint's normalization.json (the new data's are still computed, to "
        "warn when its actions leave their range).",
    )
    stats_cache_dir: str | None = Field(
        None, description="Where statistics are cached when the dataset's folder is read-only (default ~/.cache/atlas/stats)."
    )
    stats_reservoir_size: int = Field(
        100_000, gt=0, description="Rows kept (uniform reservoir sample) for q01/q99; exact when the data has fewer rows."
    )
    state_noise_snr: float | None = Field(
        None, description="Gaussian noise on the normalized training state at this SNR in dB (RDT: 40); None: off."
    )
    image_aug: ImageAugConfig = Field(
        default_factory=ImageAugConfig, description="Training-time image augmentation on the device (true: defaults)."
    )
    mixture: list[MixtureEntry] | None = Field(
        None,
        description="Weighted datasets instead of one data.path: a list of {path, format, weight, name, any other "
        "data.* key}; each keeps its own statistics, state/action are padded to the largest (and model.unified_dim).",
    )
    # synthetic data (tests and smoke runs)
    state_dim: int = Field(8, gt=0, le=4096, description="synthetic: state vector size.")
    action_dim: int = Field(4, gt=0, le=4096, description="synthetic: action vector size.")
    num_episodes: int = Field(16, gt=0, le=100_000, description="synthetic: number of episodes.")
    episode_length: int = Field(40, gt=0, le=100_000, description="synthetic: steps per episode (episodes vary by up to 25% around it).")
    image_size: int = Field(0, ge=0, le=1024, description="synthetic: square image size (0: no images).")
    num_cameras: int = Field(1, ge=0, le=16, description="synthetic: cameras per frame when image_size > 0.")
    num_tasks: int = Field(2, gt=0, le=1000, description="synthetic: number of tasks (each with its own instruction).")

    @field_validator("normalization")
    @classmethod
    def _check_normalization(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        """`off`/`no`/`false` (YAML 1.1 booleans, read as words) mean `none`."""
        def word(mode: str) -> str:
            return "none" if mode not in NORMALIZATION_MODES and switch_value(mode) is False else mode

        value = {k: word(v) for k, v in value.items()} if isinstance(value, dict) else word(value)
        modes = value.values() if isinstance(value, dict) else [value]
        for mode in modes:
            if mode not in NORMALIZATION_MODES:
                raise ValueError(f"unknown normalization {mode!r}; valid: {', '.join(NORMALIZATION_MODES)}")
        if isinstance(value, dict):
            unknown = set(value) - {"state", "action"}
            if unknown:
                raise ValueError(f"normalization keys must be state and/or action, got {sorted(unknown)}")
        return value

    @model_validator(mode="after")
    def _check_mixture(self) -> DataConfig:
        if self.mixture is not None:
            if not self.mixture:
                raise ValueError("data.mixture is empty; list at least one {path, weight} or drop the key")
            self.dataset_configs()  # every entry's keys and values checked now, not at the first read
        return self

    def dataset_configs(self) -> list[tuple[str, float, DataConfig]]:
        """(name, weight normalized to sum 1, the dataset's own data config) per mixture entry."""
        entries = self.mixture or []
        total = sum(e.weight for e in entries)
        base = self.model_dump(exclude={"mixture"})
        out, seen = [], set()
        for n, entry in enumerate(entries):
            extra = entry.overrides()
            unknown = sorted(set(extra) - set(DataConfig.model_fields))
            if unknown:
                raise ValueError(f"data.mixture[{n}]: unknown key(s) {unknown}; an entry takes path, format, weight, "
                                 "name and data.* keys")
            shared = sorted(set(extra) & set(SHARED_BY_MIXTURE))
            if shared:
                raise ValueError(f"data.mixture[{n}]: {shared} apply to the whole mixture; set them under data:")
            name = entry.name or os.path.splitext(os.path.basename(os.path.normpath(entry.path)))[0] or f"dataset{n}"
            if name in seen:
                raise ValueError(f"data.mixture[{n}]: name {name!r} used twice; give each entry a distinct name")
            seen.add(name)
            fields = {**base, **extra, "path": entry.path, "format": entry.format or "auto"}
            out.append((name, entry.weight / total, DataConfig(**fields)))
        return out

    def normalization_modes(self) -> dict[str, str]:
        """{state: mode, action: mode}; a key left out of a dict uses mean_std."""
        if isinstance(self.normalization, str):
            return {"state": self.normalization, "action": self.normalization}
        return {"state": self.normalization.get("state", "mean_std"), "action": self.normalization.get("action", "mean_std")}


class DataLoadingConfig(Section):
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per training process (0: load in the main process).")
    prefetch_factor: int | None = Field(2, ge=1, description="Batches each worker loads ahead (ignored with 0 workers).")
    pin_memory: bool = Field(True, description="Pin host memory for faster copies to a GPU (ignored on CPU).")
    persistent_workers: bool = Field(False, description="Keep workers alive between epochs.")
    preload_data: bool = Field(False, description="Decode the whole dataset into memory once.")
    use_compression: bool = Field(False, description="Keep images JPEG-compressed in memory when preloading.")
    preload_max_gb: float | None = Field(
        None, gt=0, description="Refuse to preload above this estimate (GB per process; None: half of the available memory)."
    )
    shuffle_buffer_size: int = Field(0, ge=0, description="Kept for seed compatibility; all_steps sampling shuffles globally.")
