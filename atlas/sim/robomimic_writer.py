"""Writes demonstrations in the robomimic HDF5 layout that `data.format: robomimic` reads.

  data.attrs: env_args (JSON), total (steps), collection (JSON: tried/kept per task)
  data/demo_<i>/obs/state            float32 [T, S]
  data/demo_<i>/obs/<camera>_image   uint8   [T, H, W, 3] upright
  data/demo_<i>/actions              float32 [T, A]
  data/demo_<i>/rewards, dones, success
  demo attrs: task, language_instruction, seed, num_samples

Datasets carry no timestamps, so the same episodes give the same bytes. The writer writes whatever path
it is given; `atlas.sim.collection` gives it a temporary file and renames it over `--out` at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np


class RobomimicWriter:
    """Appends episodes as demo_0, demo_1, ... in the order they are given (after any already in the file)."""

    def __init__(self, path: str | Path, env_args: dict, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = h5py.File(self.path, "a" if append else "w", track_order=False)
        if append:
            self.data = self.file["data"]
            self.num_demos = len([k for k in self.data if k.startswith("demo_")])
            self.total = int(self.data.attrs.get("total", 0))
        else:
            self.data = self.file.create_group("data")
            self.num_demos = 0
            self.total = 0
        self.data.attrs["env_args"] = json.dumps(env_args, sort_keys=True)

    def add(self, episode: dict) -> str:
        """episode: state, actions, rewards, dones, success arrays, images {camera: [T,H,W,3]}, task, instruction, seed.

        A converted episode may lack rewards/dones/success/seed: zeros, done at the last step, seed 0."""
        length = int(len(episode["actions"]))
        dones = np.zeros(length, dtype=np.uint8)
        dones[-1:] = 1
        episode = {"rewards": np.zeros(length, np.float32), "dones": dones, "success": np.zeros(length, np.uint8),
                   "seed": 0, **episode}
        name = f"demo_{self.num_demos}"
        group = self.data.create_group(name)
        obs = group.create_group("obs")
        obs.create_dataset("state", data=np.asarray(episode["state"], dtype=np.float32))
        for camera, frames in episode.get("images", {}).items():
            frames = np.asarray(frames, dtype=np.uint8)
            obs.create_dataset(
                f"{camera}_image", data=frames, chunks=(1, *frames.shape[1:]), compression="gzip", compression_opts=4
            )
        group.create_dataset("actions", data=np.asarray(episode["actions"], dtype=np.float32))
        group.create_dataset("rewards", data=np.asarray(episode["rewards"], dtype=np.float32))
        group.create_dataset("dones", data=np.asarray(episode["dones"], dtype=np.uint8))
        group.create_dataset("success", data=np.asarray(episode["success"], dtype=np.uint8))
        group.attrs["num_samples"] = length
        group.attrs["task"] = episode["task"]
        group.attrs["language_instruction"] = episode["instruction"]
        group.attrs["seed"] = int(episode["seed"])
        self.num_demos += 1
        self.total += length
        return name

    def close(self, collection: dict | None = None) -> None:
        self.data.attrs["total"] = self.total
        self.data.attrs["collection"] = json.dumps(collection or {}, sort_keys=True)
        self.file.close()

    def abort(self) -> None:
        """Close without sealing (the caller deletes the temporary file)."""
        if self.file.id.valid:
            self.file.close()
