"""`atlas convert IN OUT --to lerobot|robomimic`: any dataset Atlas reads, written in another format.

Episodes are read through the same `EpisodeSource` training uses (so what is written is what Atlas would
train on: the state keys concatenated, the cameras by their Atlas names) and handed to a writer from
`atlas.data.writers`. To LeRobot: v3.0 (or `--layout v2.1`), AV1 video by default like LeRobot, or a lossless
`--vcodec libx264rgb` when frames must come back bit for bit. To robomimic: one HDF5 file, `obs/state`,
`obs/<camera>_image`, `actions`, the task name and instruction as demo attributes.
"""

from __future__ import annotations

import os

import numpy as np

from atlas.data.config import DataConfig
from atlas.data.detect import detect_format
from atlas.data.episodes import EpisodeSource
from atlas.data.errors import DataError
from atlas.data.registry import episode_names, open_source
from atlas.data.writers import open_writer


def read_episode(source: EpisodeSource, episode: int, name: str) -> dict:
    """Every row of one episode: state, actions, frames per camera (videos decode in one forward pass)."""
    rows = np.arange(source.length(episode))
    info = source.info(episode)
    return {
        "state": source.read(episode, "state", rows),
        "actions": source.read(episode, "action", rows),
        "images": {camera: source.read(episode, f"image/{camera}", rows) for camera in source.cameras},
        "task": info.task,
        "instruction": info.instruction,
        "name": name,
    }


def convert_dataset(source: EpisodeSource, out: str, to: str, **options) -> int:
    """Write every episode of `source` to `out` in format `to`; returns the number of frames written."""
    writer = open_writer(to, out, **options)
    frames = 0
    for episode, name in enumerate(episode_names(source)):
        writer.add(read_episode(source, episode, name))
        frames += source.length(episode)
    writer.close({"converted_from": getattr(source, "notes", [""])[0] if getattr(source, "notes", None) else ""})
    return frames


def convert(args) -> int:
    fmt = args.data_format or detect_format(args.input)
    if os.path.exists(args.output) and not args.overwrite:
        if not (os.path.isdir(args.output) and not os.listdir(args.output)):
            raise DataError(f"{args.output}: exists (pass --overwrite to replace it)")
    source = open_source(DataConfig(format=fmt, path=args.input))
    fps = args.fps or int(getattr(getattr(source, "meta", None), "fps", 0) or 0) or None
    frames = convert_dataset(source, args.output, args.to, fps=fps, codec=args.vcodec, version=args.layout,
                             overwrite=args.overwrite)
    print(f"converted {source.num_episodes()} episodes ({frames} frames) from {fmt} {args.input} "
          f"to {args.to} {args.output}")
    return 0
