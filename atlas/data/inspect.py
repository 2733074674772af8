"""`atlas inspect DATASET [--format F] [--index I ...] [--obs-horizon H] [--action-horizon A] [--out FILE.safetensors]
[--png DIR]`: what the loader feeds the model for given global sample indices, before normalization.

Global index = position in the dataset's frame order, episode after episode (LeRobot's `index` column), over
every episode (no validation split). Tensors per index i, the same for every format:
  <i>.state [obs_horizon, D] float32, <i>.state_is_pad [obs_horizon] bool (history before the episode start),
  <i>.actions [action_horizon, A] float32, <i>.actions_is_pad [action_horizon] bool (past the episode end),
  <i>.image.<camera> uint8 [obs_horizon, H, W, 3] (camera: the dataset's own name: LeRobot's part after
  `observation.images.`, the HDF5 formats' obs key such as `corner2_image` or `cam_high`).
Padded rows repeat the first/last frame of the episode, as LeRobot and the training loader do.
"""

from __future__ import annotations

import os

import numpy as np

from atlas.data.config import DataConfig
from atlas.data.detect import detect_format
from atlas.data.episodes import EpisodeSource, StepDataset
from atlas.data.errors import DataError
from atlas.data.registry import open_source
from atlas.models.config import ModelConfig


def sample_tensors(dataset: StepDataset, index: int) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors named as above without the index prefix, {episode, frame, instruction}) of one global index."""
    if not 0 <= index < len(dataset):
        raise DataError(f"--index {index}: out of range, the dataset has {len(dataset)} samples (0..{len(dataset) - 1})")
    sample = dataset[index]
    t = sample["frame_index"]
    tensors = {
        "state": np.ascontiguousarray(sample["state"], dtype=np.float32),
        "state_is_pad": (t + np.arange(1 - dataset.obs_horizon, 1)) < 0,
        "actions": np.ascontiguousarray(sample["action"], dtype=np.float32),
        "actions_is_pad": ~np.asarray(sample["action_mask"], dtype=bool),
    }
    own_name = getattr(dataset.source, "camera_key", lambda camera: camera)
    for n, camera in enumerate(dataset.source.cameras):
        tensors[f"image.{own_name(camera)}"] = np.ascontiguousarray(sample["images"][:, n].transpose(0, 2, 3, 1))
    info = {"episode": sample["episode_index"], "frame": t, "instruction": sample["instruction"]}
    return tensors, info


def inspect_samples(source: EpisodeSource, indices: list[int], obs_horizon: int, action_horizon: int):
    """[(index, tensors, info)] for the given global indices."""
    dataset = StepDataset(source, list(range(source.num_episodes())), action_horizon, obs_horizon)
    return [(i, *sample_tensors(dataset, i)) for i in indices], len(dataset)


def format_table(rows: list, total: int) -> str:
    lines = [f"{total} samples; shapes before normalization; pad = padded rows (history / action chunk)",
             f"{'index':>7} {'episode':>7} {'frame':>6}  {'state':<10} {'pad':>3}  {'actions':<10} {'pad':>3}  "
             f"{'images':<24} instruction"]
    for index, tensors, info in rows:
        shape = {key: "x".join(map(str, value.shape)) for key, value in tensors.items()}
        images = " ".join(f"{k[6:]}:{shape[k]}" for k in tensors if k.startswith("image.")) or "-"
        lines.append(f"{index:>7} {info['episode']:>7} {info['frame']:>6}  {shape['state']:<10} "
                     f"{int(tensors['state_is_pad'].sum()):>3}  {shape['actions']:<10} "
                     f"{int(tensors['actions_is_pad'].sum()):>3}  {images:<24} {info['instruction']}")
    return "\n".join(lines)


def write_pngs(rows: list, folder: str) -> int:
    """<i>.<camera>.<k>.png per history frame k; returns the number written."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    written = 0
    for index, tensors, _ in rows:
        for key, frames in tensors.items():
            if key.startswith("image."):
                for k, frame in enumerate(frames):
                    Image.fromarray(frame).save(os.path.join(folder, f"{index}.{key[6:]}.{k}.png"))
                    written += 1
    return written


def inspect(args) -> int:
    """The command: a table on stdout, tensors (--out) and PNGs (--png) on disk."""
    from safetensors.numpy import save_file

    fmt = args.data_format or detect_format(args.dataset)
    obs_horizon = args.obs_horizon or DataConfig.model_fields["obs_horizon"].default
    action_horizon = args.action_horizon or ModelConfig.model_fields["action_horizon"].default
    source = open_source(DataConfig(format=fmt, path=args.dataset))
    rows, total = inspect_samples(source, list(args.index or [0]), obs_horizon, action_horizon)
    print(f"format={fmt} dataset={args.dataset} obs_horizon={obs_horizon} action_horizon={action_horizon}")
    print(format_table(rows, total))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_file({f"{i}.{key}": value for i, tensors, _ in rows for key, value in tensors.items()}, args.out)
        print(f"wrote {args.out}")
    if args.png:
        print(f"wrote {write_pngs(rows, args.png)} PNGs to {args.png}")
    return 0
