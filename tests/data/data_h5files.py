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


def upright_scene(length: int, size: int) -> np.ndarray:
    """Frames with a known orientation: brightness grows down the rows (a bright table below a dark
    background) and the left quarter is red, so a frame turned by 180 degrees is told apart on both axes."""
    rows = np.linspace(20, 230, size, dtype=np.float64)[:, None].repeat(size, axis=1)
    out = np.empty((length, size, size, 3), np.uint8)
    for t in range(length):
        out[t] = np.clip(rows + t, 0, 255).astype(np.uint8)[..., None]
        out[t, :, : size // 4, 0] = 255
    return out


def write_libero_demo(folder: Path, task: str, instruction: str, episodes: int = 2, length: int = 12,
                      size: int = 16, seed: int = 0) -> Path:
    """`<task>_demo.hdf5` as LIBERO's scripts/create_dataset.py writes it: `data` attributes problem_info,
    env_args and bddl_file_name; obs agentview_rgb/eye_in_hand_rgb stored upside down (robosuite's OpenGL
    rows), ee_pos/ee_ori/ee_states, gripper_states, joint_states; 7-d actions, rewards, dones."""
    rng = np.random.default_rng(seed)
    path = Path(folder) / f"{task}_demo.hdf5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        problem = {"problem_name": "libero_kitchen_tabletop_manipulation", "domain_name": "robosuite",
                   "language_instruction": instruction}
        data.attrs["problem_info"] = json.dumps(problem)
        data.attrs["env_args"] = json.dumps({"type": 1, "env_name": "Libero_Kitchen_Tabletop_Manipulation",
                                             "problem_name": problem["problem_name"], "env_kwargs": {}})
        data.attrs["bddl_file_name"] = f"libero/libero/bddl_files/libero_90/{task}.bddl"
        data.attrs["macros_image_convention"] = "opengl"
        data.attrs["num_demos"] = episodes
        data.attrs["total"] = episodes * length
        scene = upright_scene(length, size)
        for i in range(episodes):
            demo = data.create_group(f"demo_{i}")
            obs = demo.create_group("obs")
            obs["agentview_rgb"] = scene[:, ::-1, ::-1]
            obs["eye_in_hand_rgb"] = scene[:, ::-1, ::-1] // 2
            ee_pos = rng.normal(size=(length, 3)) * 0.1 + [-0.2, 0.0, 1.2]
            ee_ori = rng.normal(size=(length, 3)) * 0.1 + [3.1, 0.0, -0.1]
            obs["ee_pos"], obs["ee_ori"] = ee_pos, ee_ori
            obs["ee_states"] = np.hstack([ee_pos, ee_ori])
            obs["gripper_states"] = rng.normal(size=(length, 2)) * 0.01 + [0.039, -0.039]
            obs["joint_states"] = rng.normal(size=(length, 7))
            actions = np.clip(rng.normal(size=(length, 7)) * 0.3, -1, 1)
            actions[:, -1] = np.where(np.arange(length) < length // 2, -1.0, 1.0)
            demo["actions"] = actions
            demo["rewards"] = (np.arange(length) == length - 1).astype(np.uint8)
            demo["dones"] = (np.arange(length) == length - 1).astype(np.uint8)
            demo["states"] = rng.normal(size=(length, 47))
            demo["robot_states"] = rng.normal(size=(length, 9))
            demo.attrs["num_samples"] = length
    return path
