"""LIBERO's own demonstration files: the instruction from problem_info, frames upright, the env's 8-d state.

These need no simulator: they read real HDF5 files written in LIBERO's layout (tests/data/data_h5files.py).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from data_h5files import upright_scene, write_libero_demo

from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.formats import libero_spec
from atlas.data.registry import build_data, open_source

TASKS = {
    "KITCHEN_SCENE10_close_the_top_drawer_of_the_cabinet": "close the top drawer of the cabinet",
    "KITCHEN_SCENE10_put_the_black_bowl_in_the_top_drawer_of_the_cabinet":
        "put the black bowl in the top drawer of the cabinet",
}


@pytest.fixture()
def libero_folder(tmp_path):
    for seed, (task, instruction) in enumerate(TASKS.items()):
        write_libero_demo(tmp_path / "libero_90", task, instruction, episodes=2, length=10, size=16, seed=seed)
    return tmp_path / "libero_90"


@pytest.mark.parametrize("fmt", ["robomimic", "libero"])  # recognised by its attributes, or named
def test_libero_folder_gives_instruction_upright_frames_and_env_state(libero_folder, fmt):
    source = open_source(DataConfig(format=fmt, path=str(libero_folder)))
    assert source.cameras == list(libero_spec.CAMERAS) == ["agentview", "eye_in_hand"]
    by_task = {source.info(e).task: source.info(e).instruction for e in range(source.num_episodes())}
    assert by_task == TASKS  # task = file stem less `_demo`; instruction = problem_info's
    rows = np.array([0, 3, 3, 9])
    scene = upright_scene(10, 16)[rows]
    frames = source.read(0, "image/agentview", rows)
    np.testing.assert_array_equal(frames, scene)  # stored upside down, read upright
    np.testing.assert_array_equal(source.read(0, "image/eye_in_hand", rows), scene // 2)
    assert frames[0, 12:].mean() > frames[0, :4].mean() + 100 and frames[0, :, 0, 0].min() == 255
    path = sorted(libero_folder.glob("*.hdf5"))[0]
    with h5py.File(path) as f:
        obs = f["data/demo_0/obs"]
        want = np.hstack([obs["ee_pos"][()], obs["ee_ori"][()], obs["gripper_states"][()]])[rows]
    state = source.read(0, "state", rows)
    assert state.shape == (4, libero_spec.STATE_DIM)
    np.testing.assert_allclose(state, want, rtol=1e-6)
    assert source.read(0, "action", rows).shape == (4, libero_spec.ACTION_DIM)


def test_libero_bundle_meta_names_the_benchmark_tasks(libero_folder):
    bundle = build_data(DataConfig(format="robomimic", path=str(libero_folder), val_ratio=0), DataLoadingConfig(), 4, 0)
    assert bundle.meta.tasks == sorted(TASKS) and bundle.meta.instructions == TASKS
    assert bundle.meta.cameras == ["agentview", "eye_in_hand"] and bundle.meta.state_dim == 8
    sample = bundle.train[0]
    # [obs_horizon, cameras, 3, H, W] channels-first: the bright table rows are at the bottom
    image = np.asarray(sample["images"][0, 0])
    assert image[:, 12:].mean() > image[:, :4].mean() + 100


def test_preloaded_jpeg_libero_frames_are_turned_too(libero_folder):
    loading = DataLoadingConfig(preload_data=True, use_compression=True)
    bundle = build_data(DataConfig(format="libero", path=str(libero_folder), val_ratio=0), loading, 4, 0)
    image = np.asarray(bundle.train[0]["images"][0, 0])
    assert image[:, 12:].mean() > image[:, :4].mean() + 100


def test_env_state_matches_the_files_state_layout():
    """The env side: eef pos + axis-angle of the (x, y, z, w) quaternion + both finger joints."""
    angle = 0.7
    quat = np.array([0.0, 0.0, np.sin(angle / 2), np.cos(angle / 2)])  # `angle` about z
    obs = {"robot0_eef_pos": np.array([0.1, 0.2, 0.3]), "robot0_eef_quat": quat,
           "robot0_gripper_qpos": np.array([0.04, -0.04])}
    np.testing.assert_allclose(libero_spec.env_state(obs), [0.1, 0.2, 0.3, 0, 0, angle, 0.04, -0.04], atol=1e-6)
    identity = dict(obs, robot0_eef_quat=np.array([0.0, 0.0, 0.0, 1.0]))
    np.testing.assert_allclose(libero_spec.env_state(identity)[3:6], 0.0)


def test_libero_gpu_config_loads_and_reads_libero_files(tmp_path):
    """atlas/configs/libero_gpu.yaml as shipped, pointed at a folder of LIBERO-layout 128 px files."""
    from atlas.config import load_config
    from atlas.config.loader import configs_dir

    folder = tmp_path / "libero_90"
    for seed, (task, instruction) in enumerate(TASKS.items()):
        write_libero_demo(folder, task, instruction, episodes=1, length=3, size=128, seed=seed)
    cfg = load_config(str(configs_dir() / "libero_gpu.yaml"), [f"data.path={folder}"])
    assert cfg.data.format == "libero" and cfg.model.preset == "atlas-base" and cfg.eval.env == "libero"
    assert cfg.model.vision.image_size == 128 and cfg.eval.max_steps is None  # the suite's own step limit
    bundle = build_data(cfg.data.model_copy(update={"val_ratio": 0.0}), cfg.data_loading, cfg.model.action_horizon, 0)
    assert bundle.meta.cameras == ["agentview", "eye_in_hand"] and bundle.meta.image_size == (128, 128)
    assert bundle.meta.state_dim == 8 and bundle.meta.action_dim == 7
