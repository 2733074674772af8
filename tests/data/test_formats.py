"""Both HDF5 layouts read from real files: keys, cameras, JPEG decoding, tasks and instructions."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from data_h5files import frames, write_aloha, write_aloha_episode, write_robomimic

from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.errors import DataError
from atlas.data.registry import build_data, open_source


def test_robomimic_metaworld_layout(tmp_path):
    path = write_robomimic(tmp_path / "mw.hdf5", lengths=(12, 9, 15))
    source = open_source(DataConfig(format="robomimic", path=str(path)))
    assert source.cameras == ["corner2"]
    assert [source.length(e) for e in range(3)] == [12, 9, 15]
    assert source.info(0).task == "reach-v3" and source.info(0).instruction == "do reach-v3"
    with h5py.File(path) as f:
        want_state = f["data/demo_1/obs/state"][()][[0, 0, 4]]
        want_image = f["data/demo_1/obs/corner2_image"][()][[3, 1]]
    np.testing.assert_array_equal(source.read(1, "state", np.array([0, 0, 4])), want_state)
    np.testing.assert_array_equal(source.read(1, "image/corner2", np.array([3, 1])), want_image)
    assert json.loads(source.metadata["env_args"][str(path)])["env_name"] == "metaworld"
    bundle = build_data(DataConfig(format="robomimic", path=str(path), val_ratio=0), DataLoadingConfig(), 5, 0)
    sample = bundle.train[bundle.train.starts[1] + 7]  # episode 1 (9 steps), t=7: 2 real rows then padding
    assert sample["images"].shape == (1, 1, 3, 16, 16) and sample["state"].shape == (1, 39)
    assert sample["action_mask"].tolist() == [True, True, False, False, False]
    assert bundle.meta.state_dim == 39 and bundle.meta.action_dim == 4 and bundle.meta.image_size == (16, 16)


def test_robomimic_libero_style_keys_and_file_instruction(tmp_path):
    """LIBERO: *_rgb cameras, several state keys concatenated by name, instruction from problem_info."""
    path = tmp_path / "KITCHEN_SCENE1_open_the_drawer_demo.hdf5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_group("data").attrs["problem_info"] = json.dumps({"language_instruction": "open the drawer"})
        for i, length in enumerate((6, 7)):
            obs = f.create_group(f"data/demo_{i}/obs")
            obs["agentview_rgb"] = frames(rng, length, 8)
            obs["eye_in_hand_rgb"] = frames(rng, length, 8)
            obs["joint_states"] = rng.normal(size=(length, 7))
            obs["gripper_states"] = rng.normal(size=(length, 2))
            f[f"data/demo_{i}/actions"] = rng.normal(size=(length, 7))
    source = open_source(DataConfig(format="robomimic", path=str(path)))
    assert source.cameras == ["agentview", "eye_in_hand"]
    assert source.read(0, "state", np.arange(2)).shape == (2, 9)  # gripper_states (2) + joint_states (7)
    # a LIBERO file (problem_info + agentview_rgb): the task is the benchmark's name, the stem less `_demo`
    assert source.info(1).task == "KITCHEN_SCENE1_open_the_drawer" and source.info(1).instruction == "open the drawer"
    chosen = open_source(DataConfig(format="robomimic", path=str(path), obs_keys=["joint_states"], image_keys=[]))
    assert chosen.cameras == [] and chosen.read(0, "state", np.arange(2)).shape == (2, 7)


def test_robomimic_folder_is_several_tasks(tmp_path):
    write_robomimic(tmp_path / "a.hdf5", tasks={"reach-v3": (0.0, 2)})
    write_robomimic(tmp_path / "b.hdf5", tasks={"push-v3": (3.0, 3)}, seed=1)
    bundle = build_data(DataConfig(format="robomimic", path=str(tmp_path), val_ratio=0), DataLoadingConfig(), 4, 0)
    assert bundle.meta.tasks == ["push-v3", "reach-v3"]
    assert {bundle.train[i]["task_index"] for i in range(len(bundle.train))} == {0, 1}


@pytest.mark.parametrize("encoded", [True, False])
def test_aloha_layout_jpeg_and_raw(tmp_path, encoded):
    root = write_aloha(tmp_path / "rdt", episodes=3, encoded=encoded)
    source = open_source(DataConfig(format="aloha", path=str(root)))
    assert source.cameras == ["cam_high", "cam_left_wrist"]
    assert source.info(2).task == "pick_cup" and source.info(2).instruction == "pick up the cup"
    images = source.read(1, "image/cam_high", np.array([2, 2, 0]))
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    rng = np.random.default_rng(1)  # replay the writer's draws: action, qpos, then cam_high frames
    rng.normal(size=(13, 14)), rng.normal(size=(13, 14))
    original = frames(rng, 13, 16)[[2, 2, 0]]
    if encoded:  # JPEG is lossy: decoded frames stay close to the originals
        assert np.abs(images.astype(int) - original.astype(int)).mean() < 6
    else:
        np.testing.assert_array_equal(images, original)
    bundle = build_data(
        DataConfig(format="aloha", path=str(root), val_ratio=0), DataLoadingConfig(preload_data=True, use_compression=encoded), 3, 0
    )
    assert bundle.train[0]["images"].shape == (1, 2, 3, 16, 16) and bundle.meta.state_dim == 14


def test_aloha_instruction_attr_and_missing_camera(tmp_path):
    write_aloha_episode(tmp_path / "t" / "episode_0.hdf5", 5, seed=0, instruction="fold the towel")
    source = open_source(DataConfig(format="aloha", path=str(tmp_path / "t")))
    assert source.info(0).instruction == "fold the towel"
    with pytest.raises(DataError, match="cam_low.*cameras in the file: cam_high, cam_left_wrist"):
        open_source(DataConfig(format="aloha", path=str(tmp_path / "t"), image_keys=["cam_low"]))


def test_missing_key_lists_what_the_episode_has(tmp_path):
    path = write_robomimic(tmp_path / "mw.hdf5")
    with pytest.raises(DataError, match=r"mw.hdf5, episode demo_0, key obs/joints: missing; obs has: corner2_image, state"):
        open_source(DataConfig(format="robomimic", path=str(path), obs_keys=["joints"]))
    with pytest.raises(DataError, match=r"key act: missing; the episode has: actions, dones, obs/corner2_image"):
        open_source(DataConfig(format="robomimic", path=str(path), action_key="act"))
