"""Float image frames become the uint8 the model expects (not black frames), zero-width actions and files
that disagree in state size are refused by name: real HDF5 files through the real loader."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from atlas.config import load_config
from atlas.data.errors import DataError
from atlas.data.registry import build_data


def _file(path, frames=None, state_dim=5, action_dim=3):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        demo = f.create_group("data/demo_0")
        demo.create_dataset("obs/state", data=rng.normal(size=(6, state_dim)).astype(np.float32))
        demo.create_dataset("actions", data=rng.normal(size=(6, action_dim)).astype(np.float32))
        if frames is not None:
            demo.create_dataset("obs/agentview_image", data=frames)


def _data(path, tmp_path):
    cfg = load_config(None, ["data.format=robomimic", f"data.path={path}", "data.val_ratio=0", "model.action_horizon=2",
                             f"data.stats_cache_dir={tmp_path / 'stats'}"])
    return build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, seed=0)


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_frames_are_converted_to_uint8_with_a_log_line(tmp_path, scale):
    frames = np.random.default_rng(1).uniform(0, 1, size=(6, 8, 8, 3))
    _file(tmp_path / "f.hdf5", frames * scale)
    bundle = _data(tmp_path / "f.hdf5", tmp_path)
    sample = bundle.train[0]
    image = np.asarray(sample["images"]).reshape(-1, 3, 8, 8)[0]  # [camera/frame, C, H, W] as the loader gives it
    assert image.dtype == np.uint8
    assert np.array_equal(image, np.rint(frames[0] * 255).astype(np.uint8).transpose(2, 0, 1))
    assert any("converted to uint8" in line for line in bundle.log_lines)


def test_zero_width_actions_are_refused(tmp_path):
    _file(tmp_path / "z.hdf5", action_dim=0)
    with pytest.raises(DataError, match="0 action values per step"):
        _data(tmp_path / "z.hdf5", tmp_path)


def test_files_that_disagree_in_state_size_are_refused_naming_both(tmp_path):
    (tmp_path / "parts").mkdir()
    _file(tmp_path / "parts" / "a.hdf5", state_dim=39)
    _file(tmp_path / "parts" / "b.hdf5", state_dim=7)
    with pytest.raises(DataError) as err:
        _data(tmp_path / "parts", tmp_path)
    assert "a.hdf5" in str(err.value) and "b.hdf5" in str(err.value) and "7 state values" in str(err.value)
