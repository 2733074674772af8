"""Bad data fails at start-up with the file, episode and key named (a DataError, never a bare h5py or
KeyError traceback), or is dropped and counted with `data.skip_bad_episodes`; preloading refuses above its limit."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from data_h5files import write_aloha_episode, write_robomimic

from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.errors import DataError
from atlas.data.registry import build_data


def _build(path, fmt="robomimic", loading=None, **cfg):
    return build_data(DataConfig(format=fmt, path=str(path), val_ratio=0, **cfg), loading or DataLoadingConfig(), 4, 0)


def test_truncated_file(tmp_path):
    path = write_robomimic(tmp_path / "mw.hdf5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"mw.hdf5: cannot open as HDF5 \(missing, truncated"):
        _build(path)


def test_action_and_state_lengths_differ(tmp_path):
    path = write_robomimic(tmp_path / "mw.hdf5")
    with h5py.File(path, "a") as f:
        del f["data/demo_1/actions"]
        f["data/demo_1/actions"] = np.zeros((5, 4), np.float32)
    with pytest.raises(DataError, match=r"mw.hdf5, episode demo_1, key obs/state: has 9 steps but actions has 5"):
        _build(path)
    bundle = _build(path, skip_bad_episodes=True)
    assert [bundle.train.source.episode_name(e) for e in bundle.train.episode_ids] == ["mw/demo_0", "mw/demo_2"]
    assert "data: skipped 1 bad episode(s) (data.skip_bad_episodes)" in bundle.log_lines


def test_nan_in_actions(tmp_path):
    path = write_robomimic(tmp_path / "mw.hdf5")
    with h5py.File(path, "a") as f:
        f["data/demo_2/actions"][3, 1] = np.nan
    with pytest.raises(DataError, match=r"episode demo_2, key actions: 1 non-finite values \(NaN/inf\), first at index \(3, 1\)"):
        _build(path)
    assert len(_build(path, skip_bad_episodes=True).train.episode_ids) == 2


def test_nan_in_aloha_state_is_named(tmp_path):
    path = write_aloha_episode(tmp_path / "task" / "episode_0.hdf5", 6, seed=0)
    with h5py.File(path, "a") as f:
        f["observations/qpos"][2, 0] = np.inf
    with pytest.raises(DataError, match=r"episode_0.hdf5, episode episode_0, key observations/qpos: 1 non-finite"):
        _build(tmp_path / "task", fmt="aloha")


@pytest.mark.parametrize("case", ["no_demos", "empty_folder", "all_bad", "zero_steps"])
def test_empty_dataset(tmp_path, case):
    path = tmp_path / "mw.hdf5"
    if case == "no_demos":
        with h5py.File(path, "w") as f:
            f.create_group("data")
        match = r"mw.hdf5, key data: empty dataset, no demo_<i> groups"
    elif case == "empty_folder":
        path = tmp_path / "nothing"
        path.mkdir()
        match = r"nothing: empty dataset, the folder holds no HDF5 files"
    elif case == "all_bad":
        write_robomimic(path)
        with h5py.File(path, "a") as f:
            for i in range(3):
                f[f"data/demo_{i}/actions"][0, 0] = np.nan
        match = r"empty dataset, no usable episodes \(3 skipped as bad\)"
    else:
        write_robomimic(path, lengths=(4,))
        with h5py.File(path, "a") as f:
            for key in ("actions", "obs/state", "obs/corner2_image"):
                shape = f[f"data/demo_0/{key}"].shape
                del f[f"data/demo_0/{key}"]
                f.create_dataset(f"data/demo_0/{key}", shape=(0,) + shape[1:], dtype="f4" if "image" not in key else "u1")
        match = r"episode demo_0, key actions: empty episode \(0 steps\)"
    with pytest.raises(DataError, match=match):
        _build(path, skip_bad_episodes=case == "all_bad")


def test_not_a_robomimic_file_names_its_keys(tmp_path):
    path = write_aloha_episode(tmp_path / "episode_0.hdf5", 5, seed=0)
    with pytest.raises(DataError, match=r"no 'data' group.*the file has: action, observations/images/cam_high"):
        _build(path)


def test_unknown_task_lists_the_tasks(tmp_path):
    path = write_robomimic(tmp_path / "mw.hdf5")
    with pytest.raises(DataError, match=r"data.tasks: \['pick-v3'\] not in the dataset; its tasks: reach-v3"):
        _build(path, tasks=["pick-v3"])


def test_preload_refuses_above_the_limit(tmp_path):
    path = write_robomimic(tmp_path / "mw.hdf5", image_size=64)
    with pytest.raises(DataError, match=r"preload_data: the dataset needs about .* GB .*preload_max_gb=1e-05.*use_compression"):
        _build(path, loading=DataLoadingConfig(preload_data=True, preload_max_gb=1e-5))
    assert len(_build(path, loading=DataLoadingConfig(preload_data=True, preload_max_gb=1.0)).train) == 36


def test_truncated_dataset_read_is_named(tmp_path):
    """A file that opens but whose image bytes are garbage fails on read with the episode and key."""
    path = write_aloha_episode(tmp_path / "t" / "episode_0.hdf5", 4, seed=0)
    with h5py.File(path, "a") as f:
        f["observations/images/cam_high"][1] = b"not a jpeg"
    bundle = _build(tmp_path / "t", fmt="aloha")
    bundle.train[0]
    with pytest.raises(DataError, match=r"episode_0.hdf5, episode episode_0, key observations/images/cam_high"):
        bundle.train[1]
