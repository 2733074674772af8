"""Statistics: streaming equals numpy, per-task vs dataset, `auto`, the cache, the std floor, `atlas stats`."""

from __future__ import annotations

import argparse
import json
import os
import re
import warnings

import numpy as np
import pytest
from data_h5files import write_robomimic

from atlas.data.commands import stats as stats_command
from atlas.data.config import DataConfig, DataLoadingConfig
from atlas.data.episodes import ArraySource, EpisodeInfo
from atlas.data.normalize import Normalizer
from atlas.data.registry import build_data
from atlas.data.stats import RunningStats, compute_stats


def _two_tasks(tmp_path):
    return write_robomimic(tmp_path / "two.hdf5", tasks={"reach-v3": (0.0, 3), "push-v3": (10.0, 3)})


def test_streaming_stats_match_numpy_and_reservoir_is_bounded():
    rng = np.random.default_rng(0)
    rows = rng.standard_t(df=3, size=(50_000, 3)) * [1, 10, 0.1] + [5, -2, 0]
    running = RunningStats(reservoir_size=20_000)
    for start in range(0, len(rows), 777):
        running.update(rows[start : start + 777])
    got = running.result()
    np.testing.assert_allclose(got["mean"], rows.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got["std"], rows.std(0), rtol=1e-9)
    np.testing.assert_array_equal(got["min"], rows.min(0))
    assert len(running.reservoir) == 20_000
    for q, name in ((0.01, "q01"), (0.99, "q99")):  # a uniform 20k sample: rank error well under 0.5 points
        ranks = (rows < np.array(got[name])).mean(0)
        assert np.all(np.abs(ranks - q) < 0.005), (name, ranks)
    small = RunningStats(reservoir_size=1000)
    small.update(rows[:500])
    np.testing.assert_allclose(small.result()["q99"], np.quantile(rows[:500], 0.99, axis=0))  # exact when it fits


def test_per_task_and_dataset_statistics_differ_and_auto_picks(tmp_path):
    path = _two_tasks(tmp_path)
    base = {"format": "robomimic", "path": str(path)}
    single = build_data(DataConfig(**base, tasks=["push-v3"]), DataLoadingConfig(), 4, 0)
    whole = build_data(DataConfig(**base, tasks=["push-v3"], stats="dataset"), DataLoadingConfig(), 4, 0)
    both = build_data(DataConfig(**base), DataLoadingConfig(), 4, 0)
    assert single.stats_source == "task:push-v3" and whole.stats_source == "dataset" and both.stats_source == "dataset"
    assert "data: single-task run: using statistics of task push-v3" in single.log_lines
    task_mean = np.mean(single.normalizer.stats["state"]["mean"])
    dataset_mean = np.mean(whole.normalizer.stats["state"]["mean"])
    assert abs(task_mean - 10.0) < 0.5 and abs(dataset_mean - 5.0) < 1.0  # offsets 0 and 10 in the file
    assert both.normalizer.stats == whole.normalizer.stats
    explicit = build_data(DataConfig(**base, tasks=["reach-v3"], stats="task"), DataLoadingConfig(), 4, 0)
    assert abs(np.mean(explicit.normalizer.stats["state"]["mean"])) < 0.5


def test_statistics_are_cached_by_file_fingerprint(tmp_path):
    path = _two_tasks(tmp_path)
    cfg = DataConfig(format="robomimic", path=str(path), tasks=["reach-v3"])
    first = build_data(cfg, DataLoadingConfig(), 4, 0)
    cache = tmp_path / ".atlas_cache"
    entries = sorted(cache.iterdir())
    assert len(entries) == 1 and json.loads(entries[0].read_text())["selection"]["selection"] == "task:reach-v3"
    data = json.loads(entries[0].read_text())
    data["stats"]["state"]["mean"][0] = 123.0  # a cache hit must use the stored value
    entries[0].write_text(json.dumps(data))
    assert build_data(cfg, DataLoadingConfig(), 4, 0).normalizer.stats["state"]["mean"][0] == 123.0
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))  # file changed: recompute
    again = build_data(cfg, DataLoadingConfig(), 4, 0)
    assert again.normalizer.stats["state"]["mean"][0] == first.normalizer.stats["state"]["mean"][0]
    assert len(list(cache.iterdir())) == 2


def test_unwritable_dataset_folder_caches_elsewhere(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = write_robomimic(folder / "mw.hdf5")
    (folder / ".atlas_cache").write_text("a file, so no cache folder can be made here")
    cfg = DataConfig(format="robomimic", path=str(path), stats_cache_dir=str(tmp_path / "cache"))
    bundle = build_data(cfg, DataLoadingConfig(), 4, 0)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert any(str(tmp_path / "cache") in line for line in bundle.log_lines)


def test_std_floor_warns_naming_the_dimension():
    state = np.zeros((10, 3), np.float32)
    state[:, 0] = np.arange(10)
    source = ArraySource([{"state": state, "action": state[:, :2] + 1}], [EpisodeInfo("t", "t")], [])
    stats = compute_stats(source, [0])
    from atlas.data.stats import floor_std

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        messages = floor_std(stats)
    assert any(re.search(r"state\[1-2\]: 2 constant dimension", str(w.message)) for w in caught)
    assert len(messages) == 2 and "action[1]" in messages[1]
    assert stats["state"]["std"][1:] == [1.0, 1.0] and stats["state"]["std"][0] > 1  # centred, never divided by ~0
    normalizer = Normalizer(stats, {"state": "mean_std", "action": "mean_std"})
    restored = Normalizer.from_dict(json.loads(json.dumps(normalizer.to_dict())))
    assert restored.modes == normalizer.modes and restored.stats == normalizer.stats


def test_normalization_modes_per_key_group(tmp_path):
    path = write_robomimic(tmp_path / "mw.hdf5")
    cfg = DataConfig(format="robomimic", path=str(path), normalization={"state": "quantile", "action": "min_max"})
    bundle = build_data(cfg, DataLoadingConfig(), 4, 0)
    assert bundle.normalizer.modes == {"state": "quantile", "action": "min_max"}
    actions = np.concatenate([bundle.train.source.read(e, "action", np.arange(bundle.train.source.length(e))) for e in range(3)])
    import torch

    scaled = bundle.normalizer.normalize("action", torch.from_numpy(actions))
    assert scaled.min().item() == pytest.approx(-1, abs=1e-5) and scaled.max().item() == pytest.approx(1, abs=1e-5)


def test_atlas_stats_command_prints_a_table_and_writes_json(tmp_path, capsys):
    path = _two_tasks(tmp_path)
    args = argparse.Namespace(dataset=str(path), task="push-v3", data_format=None, json=str(tmp_path / "s.json"))
    assert stats_command(args) == 0
    out = capsys.readouterr().out
    assert "format=robomimic" in out and "statistics of task:push-v3" in out
    assert "state (" in out and "action (" in out and "q99" in out
    written = json.loads((tmp_path / "s.json").read_text())
    assert len(written["stats"]["action"]["q01"]) == 4
    bad = argparse.Namespace(dataset=str(tmp_path / "nope"), task=None, data_format=None, json=None)
    assert stats_command(bad) == 1
    assert "no such file or folder" in capsys.readouterr().err
