"""Small real HDF5 datasets in both layouts, written the way their producers write them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import numpy as np
from PIL import Image


def jpeg(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=95)
    return out.getvalue()


def frames(rng: np.random.Generator, length: int, size: int) -> np.ndarray:
    """Smooth random frames (JPEG-friendly): a coloured gradient that drifts with time."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0, 255, size=3)
    out = np.empty((length, size, size, 3), np.uint8)
    for t in range(length):
        for c in range(3):
            out[t, :, :, c] = np.clip(base[c] * (0.5 + 0.5 * np.sin(xx * 3 + yy * 2 + t * 0.1 + c)), 0, 255)
    return out


def write_robomimic(
    path: Path,
    tasks: dict[str, tuple[float, int]] | None = None,
    lengths: tuple[int, ...] = (12, 9, 15),
    image_size: int = 16,
    seed: int = 0,
    per_demo_language: bool = True,
) -> Path:
    """Meta-World-collector layout; `tasks` maps task name → (state offset, episodes)."""
    rng = np.random.default_rng(seed)
    tasks = tasks or {"reach-v3": (0.0, len(lengths))}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "metaworld"})
        f.attrs["problem_info"] = json.dumps({"language_instruction": "file level instruction"})
        i = 0
        for task, (offset, count) in tasks.items():
            for j in range(count):
                length = lengths[j % len(lengths)]
                demo = data.create_group(f"demo_{i}")
                demo.attrs["task"] = task
                if per_demo_language:
                    demo.attrs["language_instruction"] = f"do {task}"
                obs = demo.create_group("obs")
                obs.create_dataset("state", data=(offset + rng.normal(size=(length, 39))).astype(np.float32))
                obs.create_dataset("corner2_image", data=frames(rng, length, image_size))
                demo.create_dataset("actions", data=rng.uniform(-1, 1, size=(length, 4)).astype(np.float32))
                demo.create_dataset("rewards", data=np.zeros(length, np.float32))
                dones = np.zeros(length, bool)
                dones[-1] = True
                demo.create_dataset("dones", data=dones)
                demo.create_dataset("success", data=dones)
                i += 1
    return path


def write_aloha_episode(
    path: Path, length: int, seed: int, image_size: int = 16, encoded: bool = True, instruction: str | None = None
) -> Path:
    """RDT fine-tuning layout: /action, /observations/qpos, /observations/images/<cam> (JPEG or uint8)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("action", data=rng.normal(size=(length, 14)).astype(np.float32))
        f.create_dataset("observations/qpos", data=rng.normal(size=(length, 14)).astype(np.float32))
        for cam in ("cam_high", "cam_left_wrist"):
            images = frames(rng, length, image_size)
            if encoded:
                encoded_frames = [jpeg(im) for im in images]
                width = max(len(b) for b in encoded_frames)
                f.create_dataset(f"observations/images/{cam}", data=np.array(encoded_frames, dtype=f"S{width}"))
            else:
                f.create_dataset(f"observations/images/{cam}", data=images)
        if instruction:
            f.attrs["instruction"] = instruction
    return path


def write_aloha(root: Path, episodes: int = 3, lengths: tuple[int, ...] = (10, 13, 8), encoded: bool = True) -> Path:
    """A task folder of episodes with `expanded_instruction_gpt-4-turbo.json` beside them."""
    task = root / "pick_cup"
    for e in range(episodes):
        write_aloha_episode(task / f"episode_{e}.hdf5", lengths[e % len(lengths)], seed=e, encoded=encoded)
    (task / "expanded_instruction_gpt-4-turbo.json").write_text(
        json.dumps({"instruction": "pick up the cup", "expanded_instruction": ["grab the cup"]})
    )
    return root
