"""Collected files: robomimic layout read back with h5py, reproducible per seed, expert statistics."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from tests.sim.helpers import run_atlas

pytestmark = pytest.mark.sim


def _arrays(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.timeout(300)
def test_layout_read_back_with_h5py(collected):
    path, result = collected
    with h5py.File(path, "r") as f:
        data = f["data"]
        assert sorted(data) == ["demo_0", "demo_1", "demo_2", "demo_3"]
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "metaworld" and env_args["env_kwargs"]["cameras"] == ["corner2"]
        assert env_args["env_kwargs"]["corrected_experts"] == []  # reach and push use Meta-World's own scripts
        stats = json.loads(data.attrs["collection"])
        assert set(stats) == {"reach-v3", "push-v3"} and all(s["episodes"] == 2 and s["tried"] >= 2 for s in stats.values())
        total = 0
        for name, task in [("demo_0", "reach-v3"), ("demo_1", "reach-v3"), ("demo_2", "push-v3"), ("demo_3", "push-v3")]:
            demo = data[name]
            assert set(demo) == {"obs", "actions", "rewards", "dones", "success"}
            assert set(demo["obs"]) == {"state", "corner2_image"}
            state, image, actions = demo["obs/state"], demo["obs/corner2_image"], demo["actions"]
            T = actions.shape[0]
            assert state.dtype == np.float32 and state.shape == (T, 39)
            assert image.dtype == np.uint8 and image.shape == (T, 64, 64, 3)
            assert actions.dtype == np.float32 and actions.shape == (T, 4)
            assert np.abs(actions[()]).max() <= 1.0
            assert demo["dones"][-1] == 1 and demo["dones"][:-1].sum() == 0
            assert demo["success"][-1] == 1  # only successful episodes are kept; they stop at success
            assert demo.attrs["task"] == task
            assert demo.attrs["language_instruction"] in ("reach the goal position", "push the puck to the goal")
            assert demo.attrs["num_samples"] == T
            total += T
        assert data.attrs["total"] == total
        # the goal is in the state (fully observable); it differs between episodes of a task
        assert not np.allclose(data["demo_0/obs/state"][0, -3:], data["demo_1/obs/state"][0, -3:])
    assert result["frames"] >= total


@pytest.mark.timeout(300)
def test_same_seed_same_arrays_any_worker_count(collected, tmp_path):
    from atlas.sim import collect

    path, _ = collected
    again = tmp_path / "again.hdf5"
    collect("reach-v3,push-v3", 2, again, image_size=64, cameras="corner2", seed=0, workers=2, progress=False)
    first, second = _arrays(path), _arrays(again)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert path.read_bytes() == again.read_bytes()  # no timestamps in the file either

    other = tmp_path / "other.hdf5"
    collect("reach-v3", 1, other, image_size=64, cameras="corner2", seed=1, progress=False)
    assert not np.array_equal(_arrays(other)["data/demo_0/obs/state"][0], first["data/demo_0/obs/state"][0])


@pytest.mark.timeout(300)
def test_cli_collect_state_only(tmp_path):
    out = tmp_path / "cli.hdf5"
    proc = run_atlas("collect", "metaworld", "--tasks", "drawer-close-v3", "--episodes", "1", "--out", str(out), "--cameras", "", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "drawer-close-v3" in proc.stdout and "frames/s" in proc.stdout
    with h5py.File(out, "r") as f:
        assert set(f["data/demo_0/obs"]) == {"state"}
        assert f["data/demo_0"].attrs["language_instruction"] == "push the drawer closed"


@pytest.mark.timeout(60)
def test_cli_collect_rejects_unknown_task(tmp_path):
    proc = run_atlas("collect", "metaworld", "--tasks", "reach-v2", "--episodes", "1", "--out", str(tmp_path / "x.hdf5"))
    assert proc.returncode == 2 and "reach-v3" in proc.stderr  # did-you-mean


def test_instruction_table_covers_all_metaworld_tasks():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.policies import ENV_POLICY_MAP

    from atlas.sim.tasks import INSTRUCTIONS, MT10, parse_tasks

    assert set(INSTRUCTIONS) == set(ALL_V3_ENVIRONMENTS) == set(ENV_POLICY_MAP)
    assert len(set(INSTRUCTIONS.values())) == 50
    assert parse_tasks("mt10") == MT10 and len(MT10) == 10
