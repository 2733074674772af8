"""`data.format: lerobot` against LeRobot's own output, Atlas's writer in both layouts, round trips, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_h5files import write_robomimic
from lerobot_helpers import FIXTURE, PROBES, REPO, TENSORS, atlas, atlas_in_process, expected, fixture_copy
from safetensors.numpy import load_file

from atlas.data.config import DataConfig
from atlas.data.errors import DataError
from atlas.data.inspect import inspect_samples
from atlas.data.registry import dataset_statistics, open_source

INSPECT = ["--index", *map(str, PROBES), "--obs-horizon", "2", "--action-horizon", "8"]


def read(path, fmt="lerobot", obs_horizon=2, action_horizon=8, indices=PROBES):
    source = open_source(DataConfig(format=fmt, path=str(path)))
    rows, total = inspect_samples(source, list(indices), obs_horizon, action_horizon)
    return {i: (tensors, info) for i, tensors, info in rows}, source, total


def test_fixture_reads_exactly_what_lerobot_returns(tmp_path):
    want, probes = expected()
    got, source, total = read(fixture_copy(tmp_path))
    assert total == 115 and source.num_episodes() == 3 and source.cameras == ["front"]
    for i in PROBES:
        tensors, info = got[i]
        for key in TENSORS:
            assert tensors[key].dtype == want[f"{i}.{key}"].dtype, (i, key)
            np.testing.assert_array_equal(tensors[key], want[f"{i}.{key}"], err_msg=f"{i}.{key}")
        assert (info["episode"], info["frame"], info["instruction"]) == (
            probes[i]["episode_index"], probes[i]["frame_index"], probes[i]["task"])


def test_inspect_subprocess_writes_the_fixture_tensors(tmp_path):
    dataset = fixture_copy(tmp_path)
    out, png = tmp_path / "seen.safetensors", tmp_path / "png"
    proc = atlas("inspect", str(dataset), *INSPECT, "--out", str(out), "--png", str(png))
    assert proc.returncode == 0, proc.stderr
    assert "open the drawer" in proc.stdout and "pick up the red block" in proc.stdout and "format=lerobot" in proc.stdout
    got, (want, _) = load_file(str(out)), expected()
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert len(list(png.glob("*.png"))) == 2 * len(PROBES)
    assert atlas("inspect", str(dataset), "--index", "115").returncode == 2


def test_dataset_meta_statistics_are_the_files(tmp_path):
    dataset = fixture_copy(tmp_path)
    cfg = DataConfig(format="lerobot", path=str(dataset), stats="dataset_meta")
    stats, label, _ = dataset_statistics(open_source(cfg), cfg, [], [])
    raw = json.loads((FIXTURE / "dataset" / "meta" / "stats.json").read_text())
    assert label == "dataset_meta"
    assert stats["state"]["mean"] == raw["observation.state"]["mean"] and stats["action"]["q99"] == raw["action"]["q99"]
    computed, _, _ = dataset_statistics(open_source(cfg.model_copy(update={"stats": "dataset"})), cfg, ["a", "b"], [0, 1, 2])
    np.testing.assert_allclose(computed["action"]["std"], raw["action"]["std"], rtol=1e-5)


def test_v21_layout_written_by_the_converter_reads_the_same(tmp_path):
    dataset = fixture_copy(tmp_path)
    v21 = tmp_path / "v21"
    assert atlas_in_process("convert", str(dataset), str(v21), "--to", "lerobot", "--layout", "v2.1",
                            "--vcodec", "libx264rgb") == 0
    assert json.loads((v21 / "meta" / "info.json").read_text())["codebase_version"] == "v2.1"
    for name in ("episodes.jsonl", "tasks.jsonl", "episodes_stats.jsonl"):
        assert (v21 / "meta" / name).is_file()
    for e in range(3):
        assert (v21 / f"data/chunk-000/episode_{e:06d}.parquet").is_file()
        assert (v21 / f"videos/chunk-000/observation.images.front/episode_{e:06d}.mp4").is_file()
    tasks = [json.loads(line)["task"] for line in (v21 / "meta" / "tasks.jsonl").read_text().splitlines()]
    assert tasks == ["pick up the red block", "open the drawer"]
    got, _, _ = read(v21)
    want, _ = expected()
    for i in PROBES:  # lossless video: the frames LeRobot decoded come back bit for bit
        for key in TENSORS:
            np.testing.assert_array_equal(got[i][0][key], want[f"{i}.{key}"], err_msg=f"{i}.{key}")


def test_hdf5_to_lerobot_round_trip_is_identical(tmp_path):
    h5 = write_robomimic(tmp_path / "mw.hdf5", tasks={"reach-v3": (0.0, 2), "push-v3": (1.0, 2)})
    out = tmp_path / "mw_lerobot"
    assert atlas_in_process("convert", str(h5), str(out), "--to", "lerobot", "--vcodec", "libx264rgb") == 0
    everything = range(12 + 9 + 12 + 9)
    original, src_a, total_a = read(h5, "robomimic", 3, 5, everything)
    written, src_b, total_b = read(out, "lerobot", 3, 5, everything)
    assert total_a == total_b
    assert [src_a.info(e) for e in range(4)] == [src_b.info(e) for e in range(4)]  # task names and instructions
    assert [src_a.episode_name(e) for e in range(4)] == [src_b.episode_name(e) for e in range(4)]
    for i in everything:  # the same tensors; cameras named by each format's own key
        assert list(original[i][0]) == [*TENSORS[:4], "image.corner2_image"]
        assert list(written[i][0]) == [*TENSORS[:4], "image.corner2"]
        for key, other in zip(original[i][0], written[i][0]):
            np.testing.assert_array_equal(original[i][0][key], written[i][0][other], err_msg=f"{i}.{key}")


def test_lerobot_to_robomimic_and_back(tmp_path):
    dataset = fixture_copy(tmp_path)
    h5, back, av1 = tmp_path / "lr.hdf5", tmp_path / "back", tmp_path / "av1"
    assert atlas_in_process("convert", str(dataset), str(h5), "--to", "robomimic") == 0
    assert atlas_in_process("convert", str(h5), str(back), "--to", "lerobot", "--vcodec", "libx264rgb") == 0
    assert atlas_in_process("convert", str(h5), str(av1), "--to", "lerobot") == 0  # LeRobot's default: AV1
    assert atlas_in_process("convert", str(h5), str(av1), "--to", "lerobot") == 2  # exists: refused
    want, _ = expected()
    from_h5, _, _ = read(h5, "robomimic")
    from_back, _, _ = read(back)
    from_av1, _, _ = read(av1)
    for i in PROBES:
        assert "image.front_image" in from_h5[i][0]  # robomimic's obs key for camera front
        from_h5[i][0]["image.front"] = from_h5[i][0].pop("image.front_image")
        for key in TENSORS:
            np.testing.assert_array_equal(from_h5[i][0][key], want[f"{i}.{key}"], err_msg=f"hdf5 {i}.{key}")
            np.testing.assert_array_equal(from_back[i][0][key], want[f"{i}.{key}"], err_msg=f"v3.0 {i}.{key}")
            if key != "image.front":
                np.testing.assert_array_equal(from_av1[i][0][key], want[f"{i}.{key}"])
        error = np.abs(from_av1[i][0]["image.front"].astype(int) - want[f"{i}.image.front"]).mean()
        assert error < 4.0, (i, error)  # lossy AV1 at crf 30, as LeRobot writes it
    info = json.loads((av1 / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "av1"


# -- corrupted inputs: one clear error, naming the file --------------------------------------------------
def _truncate_video(root):
    path = next(root.glob("videos/**/*.mp4"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _remove_data(root):
    path = root / "data" / "chunk-000" / "file-000.parquet"
    path.unlink()
    return path


def _timestamp_without_frame(root):
    path = root / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    stamps = table.column("timestamp").to_numpy().copy()
    stamps[1] += 0.05  # frame 1 of episode 0 now asks for 0.15 s: between two frames
    index = table.column_names.index("timestamp")
    pq.write_table(table.set_column(index, "timestamp", pa.array(stamps, pa.float32())), path)
    return next(root.glob("videos/**/*.mp4"))


def _other_version(root):
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    info["codebase_version"] = "v1.6"
    path.write_text(json.dumps(info))
    return path


@pytest.mark.parametrize("damage", [_truncate_video, _remove_data, _timestamp_without_frame, _other_version])
def test_corrupted_input_gives_one_clear_error_naming_the_file(tmp_path, damage):
    dataset = fixture_copy(tmp_path)
    named = damage(dataset)
    proc = atlas("inspect", str(dataset), "--index", "1", "--obs-horizon", "2")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(named) in lines[0], lines[0]
    with pytest.raises(DataError, match=str(named).replace(".", r"\.")):
        read(dataset, indices=[1])


@pytest.mark.parametrize("module", ["av", "pyarrow.parquet"])
def test_a_missing_package_names_the_extra(tmp_path, monkeypatch, module):
    dataset = fixture_copy(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # `import av` / `import pyarrow.parquet` now fail
    with pytest.raises(DataError, match=r"pip install 'atlas\[lerobot\]'"):
        read(dataset, indices=[0])


def test_missing_feature_names_info_json(tmp_path):
    dataset = fixture_copy(tmp_path)
    with pytest.raises(DataError, match=r"info\.json: no feature 'observation\.joints'"):
        open_source(DataConfig(format="lerobot", path=str(dataset), obs_keys=["observation.joints"]))
    shutil.rmtree(dataset / "meta" / "episodes")
    with pytest.raises(DataError, match="meta/episodes"):
        open_source(DataConfig(format="lerobot", path=str(dataset)))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_short_training_run_on_the_fixture(tmp_path):
    """`atlas train` on LeRobot's files: frames decoded in two worker processes, with history and chunks."""
    dataset = fixture_copy(tmp_path)
    config = tmp_path / "lerobot.yaml"
    config.write_text(f"""
data: {{format: lerobot, path: {dataset}, obs_horizon: 2, batch_size: 4, stats: dataset_meta, val_ratio: 0.34}}
data_loading: {{num_workers: 2, pin_memory: false}}
model: {{preset: mlp, hidden_dim: 32, num_layers: 2, action_horizon: 8}}
training: {{max_steps: 6, warmup_steps: 0, log_interval: 2, val_interval: 6, checkpoint_interval: 6}}
logging: {{tensorboard: false, progress_bar: false}}
""")
    proc = atlas("train", "--config", str(config), "--output-dir", str(tmp_path / "run"), timeout=220)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(line["step"] for line in lines if "loss" in line) == 6
    assert any("val_loss" in line for line in lines)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "LeRobot v3.0 dataset" in log and "dataset's own statistics" in log
    normalization = json.loads((tmp_path / "run" / "checkpoints" / "latest" / "normalization.json").read_text())
    raw = json.loads((FIXTURE / "dataset" / "meta" / "stats.json").read_text())
    assert normalization["stats"]["state"]["mean"] == raw["observation.state"]["mean"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_collect_writes_lerobot_v30(tmp_path):
    out = tmp_path / "reach"
    proc = atlas("collect", "metaworld", "--tasks", "reach-v3", "--episodes", "1", "--out", str(out),
                 "--format", "lerobot", "--image-size", "32", timeout=220)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 1
    got, source, total = read(out, indices=[0])
    assert total == info["total_frames"] and source.info(0).task == "reach-v3"
    assert got[0][0]["state"].shape == (2, 39) and got[0][0]["image.corner2"].shape == (2, 32, 32, 3)


# -- optional: LeRobot's own library reads what Atlas writes --------------------------------------------
LIBRARY = os.environ.get("ATLAS_LEROBOT_PKGS")  # a `pip install --target` folder holding lerobot-dataset 0.4.4


@pytest.mark.skipif(not LIBRARY, reason="set ATLAS_LEROBOT_PKGS to a folder with lerobot-dataset 0.4.4 (see the probe)")
@pytest.mark.timeout(240)
def test_lerobot_library_reads_atlas_written_datasets_identically(tmp_path):
    h5 = write_robomimic(tmp_path / "mw.hdf5", tasks={"reach-v3": (0.0, 2), "push-v3": (1.0, 2)})
    out = tmp_path / "mw_lerobot"
    assert atlas_in_process("convert", str(h5), str(out), "--to", "lerobot") == 0  # AV1, as LeRobot writes
    indices = [0, 1, 11, 12, 20, 21, 32, 33, 41]  # first, last and next frames of every episode
    library = tmp_path / "library.safetensors"
    env = {**os.environ, "PYTHONPATH": f"{LIBRARY}{os.pathsep}{REPO}", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("lerobot_library_probe.py")), str(out),
                           str(library), "3", "5", *map(str, indices)], capture_output=True, text=True, env=env,
                          timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    ours, source, total = read(out, obs_horizon=3, action_horizon=5, indices=indices)
    assert (report["num_frames"], report["num_episodes"]) == (total, source.num_episodes())
    theirs = load_file(str(library))
    for i in indices:
        assert report["items"][str(i)]["task"] == ours[i][1]["instruction"]
        assert (report["items"][str(i)]["episode_index"], report["items"][str(i)]["frame_index"]) == (
            ours[i][1]["episode"], ours[i][1]["frame"])
        for key, value in ours[i][0].items():
            np.testing.assert_array_equal(theirs[f"{i}.{key}"], value, err_msg=f"{i}.{key}")
