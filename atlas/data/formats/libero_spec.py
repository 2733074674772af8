"""LIBERO's conventions, defined once for its HDF5 files and its simulator (`atlas.sim.libero_env`).

A policy trained on LIBERO's files must see in the simulator exactly what it saw in training: the same
camera names, the same state vector and the same image orientation. So both sides read these:

- cameras: Atlas name → (obs key in LIBERO's files, robosuite camera in the env). The env's observation
  keys are the robosuite names + `_image` (`agentview_image`, `robot0_eye_in_hand_image`).
- state: openpi's LIBERO state (examples/libero/main.py), 8 numbers: end-effector position (3), its
  orientation as axis-angle (3), the two gripper finger joints (2). LIBERO's files store the same values
  as `ee_pos`, `ee_ori`, `gripper_states` (`ee_states` is `ee_pos` + `ee_ori`), written by LIBERO's
  `scripts/create_dataset.py` from the env's `robot0_eef_pos`, `quat2axisangle(robot0_eef_quat)`,
  `robot0_gripper_qpos`.
- orientation: robosuite renders OpenGL-style, bottom row first, so both the files' frames and the env's
  renders are upside down; `upright` turns them by 180 degrees (openpi and OpenVLA-OFT: `img[::-1, ::-1]`).
  It is the only place the turn happens, for training data and evaluation alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

# Atlas camera name -> (obs key in LIBERO's HDF5 files, robosuite camera name in the env)
CAMERAS: dict[str, tuple[str, str]] = {
    "agentview": ("agentview_rgb", "agentview"),
    "eye_in_hand": ("eye_in_hand_rgb", "robot0_eye_in_hand"),
}
# state parts in LIBERO's files, in order: either layout gives the same 8 numbers
STATE_KEYS: tuple[str, ...] = ("ee_pos", "ee_ori", "gripper_states")
STATE_KEYS_COMBINED: tuple[str, ...] = ("ee_states", "gripper_states")
STATE_DIM = 8
ACTION_DIM = 7  # OSC_POSE deltas (x, y, z, ax, ay, az) + gripper (-1 open, +1 closed)
FILE_SUFFIX = "_demo"  # LIBERO names each task's file `<task>_demo.hdf5`


def upright(frames: np.ndarray) -> np.ndarray:
    """Frames ([H, W, 3] or [T, H, W, 3]) as robosuite renders them, turned 180 degrees (rows and columns)."""
    return np.ascontiguousarray(frames[..., ::-1, ::-1, :])


def is_libero_file(data_attrs: Mapping, obs_keys: list[str]) -> bool:
    """A LIBERO demonstration file: LIBERO's `data` attributes and its agent-view camera key."""
    has_attrs = "bddl_file_name" in data_attrs or "problem_info" in data_attrs
    return has_attrs and CAMERAS["agentview"][0] in obs_keys


def state_keys(obs_keys: list[str]) -> list[str] | None:
    """The file keys giving the 8-d state, or None when the file has neither layout."""
    for keys in (STATE_KEYS, STATE_KEYS_COMBINED):
        if all(k in obs_keys for k in keys):
            return list(keys)
    return None


def task_name(file_stem: str) -> str:
    """`KITCHEN_SCENE10_close_the_top_drawer_of_the_cabinet_demo` → the benchmark's task name."""
    return file_stem[: -len(FILE_SUFFIX)] if file_stem.endswith(FILE_SUFFIX) else file_stem


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """Unit rotation axis scaled by the angle (radians) of a robosuite (x, y, z, w) quaternion."""
    w = min(max(float(quat_xyzw[3]), -1.0), 1.0)
    sin_half = math.sqrt(1.0 - w * w)
    if math.isclose(sin_half, 0.0):
        return np.zeros(3)
    return np.asarray(quat_xyzw[:3], dtype=np.float64) * 2.0 * math.acos(w) / sin_half


def env_state(obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The 8-d state from a robosuite observation dict, equal to a file's `ee_pos|ee_ori|gripper_states`."""
    parts = (obs["robot0_eef_pos"], quat_to_axis_angle(obs["robot0_eef_quat"]), obs["robot0_gripper_qpos"])
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts]).astype(np.float32)
