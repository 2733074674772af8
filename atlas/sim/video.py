"""Episode videos as mp4 (imageio-ffmpeg), named by task, episode and outcome."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def video_name(task: str, index: int, success: bool) -> str:
    return f"{task}_ep{index:03d}_{'success' if success else 'failure'}.mp4"


def write_mp4(path: str | Path, frames: Sequence[np.ndarray], fps: int = 30) -> Path:
    """frames: uint8 [H, W, 3] each (H, W multiples of 16 avoid ffmpeg resizing)."""
    try:
        import imageio.v2 as imageio
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("recording video needs imageio and imageio-ffmpeg: pip install 'atlas-vla[sim]'") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(path, list(frames), fps=fps, codec="libx264", quality=7, macro_block_size=1)
    return path
