"""Config of the data pipeline: `data:` and `data_loading:` blocks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from atlas.config.base import Section


class DataConfig(Section):
    path: str | None = Field(None, description="HDF5 file or folder of files; unused for `format: synthetic`.")
    format: str = Field("synthetic", description="Dataset format registry key: synthetic, robomimic, aloha.")
    batch_size: int = Field(8, gt=0, description="Micro-batch per device (per GPU/process), as in the seeds.")
    sampling: Literal["all_steps", "random_episode"] = Field(
        "all_steps",
        description="all_steps: every (episode, t) once per epoch (seed 000); random_episode: RDT's episode-then-step draw.",
    )
    obs_horizon: int = Field(1, gt=0, description="Frames of observation history; t<0 repeats the first frame.")
    val_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of episodes held out for validation (split by episode).")
    tasks: list[str] | None = Field(None, description="Train only on these task names (None: all tasks in the data).")
    # synthetic data (tests and smoke runs)
    state_dim: int = Field(8, gt=0, description="synthetic: state vector size.")
    action_dim: int = Field(4, gt=0, description="synthetic: action vector size.")
    num_episodes: int = Field(16, gt=0, description="synthetic: number of episodes.")
    episode_length: int = Field(40, gt=0, description="synthetic: steps per episode (episodes vary by up to 25% around it).")
    image_size: int = Field(0, ge=0, description="synthetic: square image size (0: no images).")
    num_cameras: int = Field(1, ge=0, description="synthetic: cameras per frame when image_size > 0.")
    num_tasks: int = Field(2, gt=0, description="synthetic: number of tasks (each with its own instruction).")


class DataLoadingConfig(Section):
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per training process (0: load in the main process).")
    prefetch_factor: int | None = Field(2, ge=1, description="Batches each worker loads ahead (ignored with 0 workers).")
    pin_memory: bool = Field(True, description="Pin host memory for faster copies to a GPU (ignored on CPU).")
    persistent_workers: bool = Field(False, description="Keep workers alive between epochs.")
    preload_data: bool = Field(False, description="Decode the whole dataset into memory once.")
    use_compression: bool = Field(False, description="Keep images JPEG-compressed in memory when preloading.")
    shuffle_buffer_size: int = Field(0, ge=0, description="Kept for seed compatibility; all_steps sampling shuffles globally.")
