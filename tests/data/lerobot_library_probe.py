"""Run inside a process whose path holds `lerobot-dataset` 0.4.4 (module `ledataset`): what LeRobot's own
`LeRobotDataset.__getitem__` returns for given indices of a local folder, saved with `atlas inspect`'s names.

    python lerobot_library_probe.py ROOT OUT.safetensors OBS_HORIZON ACTION_HORIZON I [I ...]

The library imports torchvision, whose only wheel for torch 2.13 is a CUDA build: its `nms`/`qnms` operator
schemas are defined first so that its pure-Python parts import. Its decoders are unavailable here (torchcodec is
not installed, torchvision 0.28 dropped `io.VideoReader`), so the frames at the timestamps the library computes
are decoded by the plain PyAV loop below (every frame of the file, matched by presentation time within the
library's tolerance), independent of Atlas's own decoder.

The library is kept out of Atlas's environment (it would replace numpy and PyAV there): install it into a
folder of its own and point `ATLAS_LEROBOT_PKGS` at it to run the optional test in test_lerobot.py:

    pip install --no-deps --target DIR lerobot-dataset==0.4.4 datasets==4.1.1 pandas dill multiprocess xxhash \
        fsspec==2025.9.0 deepdiff orderly-set jsonlines huggingface-hub==0.35.3 torchvision==0.28.0
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

_lib = torch.library.Library("torchvision", "DEF")
_lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

import av  # noqa: E402
import ledataset.datasets.lerobot_dataset as lerobot_dataset  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402


def pyav_frames(video_path, timestamps, tolerance_s, backend=None) -> torch.Tensor:
    """float [N, 3, H, W] in [0, 1] at the timestamps (what the library's decoders return)."""
    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        decoded = [(float(f.pts * stream.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    times = np.array([t for t, _ in decoded])
    out = []
    for ts in timestamps:
        k = int(np.argmin(np.abs(times - ts)))
        if abs(times[k] - ts) > tolerance_s:
            raise ValueError(f"{video_path}: no frame at {ts}")
        out.append(torch.from_numpy(decoded[k][1]).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def main(argv: list[str]) -> int:
    root, out, obs_horizon, action_horizon, *indices = argv
    lerobot_dataset.decode_video_frames = pyav_frames
    meta = lerobot_dataset.LeRobotDatasetMetadata("local/atlas", root=root)
    fps = meta.fps
    history = [(k - int(obs_horizon) + 1) / fps for k in range(int(obs_horizon))]
    deltas = {"observation.state": history, "action": [k / fps for k in range(int(action_horizon))]}
    deltas.update({key: history for key in meta.video_keys})
    dataset = lerobot_dataset.LeRobotDataset("local/atlas", root=root, delta_timestamps=deltas)
    tensors, info = {}, {}
    for index in map(int, indices):
        item = dataset[index]
        tensors[f"{index}.state"] = item["observation.state"].numpy().astype(np.float32)
        tensors[f"{index}.state_is_pad"] = item["observation.state_is_pad"].numpy()
        tensors[f"{index}.actions"] = item["action"].numpy().astype(np.float32)
        tensors[f"{index}.actions_is_pad"] = item["action_is_pad"].numpy()
        for key in meta.video_keys:
            frames = (item[key].permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8)
            tensors[f"{index}.image.{key.removeprefix('observation.images.')}"] = np.ascontiguousarray(frames.numpy())
        info[index] = {"task": item["task"], "episode_index": int(item["episode_index"]),
                       "frame_index": int(item["frame_index"])}
    save_file(tensors, out)
    print(json.dumps({"num_frames": dataset.num_frames, "num_episodes": dataset.num_episodes, "items": info}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
