"""Exact resume, atomic checkpoints, retention, refusal to overwrite, TensorBoard events."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import assert_resumed_at, final_weights, read_metrics, train_run

from atlas.config import ConfigError
from atlas.engine.checkpoint import CheckpointStore, verify

RUN = ["training.max_steps=24", "training.checkpoint_interval=6", "training.val_interval=6", "training.lr_scheduler=cosine",
       "training.warmup_steps=4", "training.ema.enabled=true", "model.dropout=0.1", "data.state_noise_snr=30"]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("workers", [0, 2])
def test_stop_and_resume_is_bitwise_equal(tmp_path, monkeypatch, workers):
    overrides = RUN + [f"data_loading.num_workers={workers}", "training.log_interval=1"]
    train_run(tmp_path / "full", overrides)
    monkeypatch.setenv("ATLAS_STOP_AT_STEP", "9")
    summary = train_run(tmp_path / "cut", overrides)
    assert summary["stopped"] and summary["final_step"] == 9 and summary["resumed_from_step"] is None
    monkeypatch.delenv("ATLAS_STOP_AT_STEP")
    before = len(read_metrics(tmp_path / "cut"))
    resumed = train_run(tmp_path / "cut", overrides, resume="auto")
    # it continued from the step-9 checkpoint (a run retrained from step 0 would end bitwise equal too)
    assert resumed["resumed_from_step"] == 9 and resumed["final_step"] == 24
    assert_resumed_at(read_metrics(tmp_path / "cut")[before:], 9)
    full, cut = final_weights(tmp_path / "full"), final_weights(tmp_path / "cut")
    assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)
    ema_a = load_file(str(tmp_path / "full/checkpoints/latest/ema/model.safetensors"))
    ema_b = load_file(str(tmp_path / "cut/checkpoints/latest/ema/model.safetensors"))
    assert ema_a.keys() == ema_b.keys() and all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


@pytest.mark.timeout(120)
def test_existing_run_folder_is_refused_without_resume(tmp_path):
    train_run(tmp_path, ["training.max_steps=2"])
    with pytest.raises(ConfigError, match="already holds a run"):
        train_run(tmp_path, ["training.max_steps=2"])


@pytest.mark.timeout(120)
def test_incomplete_checkpoint_is_never_latest_and_resume_skips_it(tmp_path):
    train_run(tmp_path, RUN[:3] + ["training.max_steps=12"])
    store = CheckpointStore(tmp_path / "checkpoints")
    assert store.pointer("latest").name == "step_00000012"
    # a crash mid-save leaves only a temp folder: latest still points at a complete checkpoint
    tmp = store.begin(18)
    (tmp / "model.safetensors").write_bytes(b"partial")
    assert store.pointer("latest").name == "step_00000012"
    # a file lost from latest: latest no longer verifies; resume falls back to the previous one
    os.remove(tmp_path / "checkpoints" / "step_00000012" / "optimizer.pt")
    assert "missing" in verify(tmp_path / "checkpoints" / "step_00000012")
    warnings = []
    assert store.newest_complete(warn=warnings.append).name == "step_00000006"
    assert warnings and "step_00000012" in warnings[0]
    log_size, before = (tmp_path / "train.log").stat().st_size, len(read_metrics(tmp_path))
    summary = train_run(tmp_path, RUN[:3] + ["training.max_steps=12", "training.log_interval=1"], resume="auto")
    assert summary["final_step"] == 12 and summary["resumed_from_step"] == 6
    assert_resumed_at(read_metrics(tmp_path)[before:], 6)
    # what the second run wrote (train.log is appended to across runs): it resumed from step 6, saved 12 again
    second = (tmp_path / "train.log").read_text()[log_size:]
    assert f"resumed from {tmp_path / 'checkpoints' / 'step_00000006'} at step 6" in second, second[-2000:]
    assert f"checkpoint {tmp_path / 'checkpoints' / 'step_00000012'}" in second
    assert store.pointer("latest").name == "step_00000012" and verify(store.pointer("latest")) is None


def test_bit_flip_is_caught_by_the_manifest(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(1, lambda d: (d / "a.bin").write_bytes(b"0123456789"))
    store.save(2, lambda d: (d / "a.bin").write_bytes(b"0123456789"))
    path = tmp_path / "step_00000002" / "a.bin"
    path.write_bytes(b"0123456788")
    assert "checksum" in verify(path.parent)
    assert store.newest_complete().name == "step_00000001"


def test_retention_keeps_best_and_latest(tmp_path):
    store = CheckpointStore(tmp_path, total_limit=2)
    for step in range(1, 7):
        store.save(step, lambda d: (d / "w").write_text("x"), best=step == 2)
    names = sorted(p.name for p in store.step_dirs())
    assert names == ["step_00000002", "step_00000006"]
    assert store.pointer("best").name == "step_00000002" and store.pointer("latest").name == "step_00000006"
    store.wait_deletions()  # the pruned folders' background deletion (a Checkpointer joins it at the end of a run)
    assert not list(tmp_path.glob(".trash-*"))
    shutil.rmtree(tmp_path)


def test_pruned_folders_are_deleted_in_the_background_and_a_killed_deletion_is_cleaned(tmp_path):
    store = CheckpointStore(tmp_path, total_limit=2)
    for step in range(1, 5):
        store.save(step, lambda d: (d / "w").write_text("x" * 1000) or (d / "sub").mkdir() or (d / "sub" / "v").write_text("y"))
    store.wait_deletions()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000003", "step_00000004"]
    # a process killed while its background deletion ran leaves a renamed folder: never a checkpoint, never
    # resumed from, removed by the next save (and a second prune of the same name does not collide with it)
    shutil.copytree(tmp_path / "step_00000003", tmp_path / ".trash-step_00000001")  # the next save cleans it
    shutil.copytree(tmp_path / "step_00000003", tmp_path / ".trash-step_00000003")  # the next prune's name
    assert [p.name for p in store.step_dirs()] == ["step_00000003", "step_00000004"]
    assert store.newest_complete().name == "step_00000004"
    store.save(5, lambda d: (d / "w").write_text("z"))
    store.wait_deletions()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000004", "step_00000005"]


@pytest.mark.timeout(120)
def test_metrics_jsonl_and_tensorboard_events(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_run(tmp_path, ["training.max_steps=10", "training.log_interval=2", "training.val_interval=5",
                         "logging.tensorboard=true"])
    lines = read_metrics(tmp_path)
    train = [m for m in lines if "loss" in m]
    assert [m["step"] for m in train] == [2, 4, 6, 8, 10]
    assert {"step", "loss", "lr", "grad_norm", "samples_per_s"} <= set(train[0])
    assert [m["step"] for m in lines if "val_loss" in m] == [5, 10]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"loss", "lr", "grad_norm", "val_loss"} <= set(events.Tags()["scalars"])
    logged = [e.value for e in events.Scalars("loss")]
    assert logged == pytest.approx([m["loss"] for m in train])
    best = CheckpointStore(tmp_path / "checkpoints").pointer("best")
    val = {m["step"]: m["val_loss"] for m in lines if "val_loss" in m}
    assert best.name == f"step_{min(val, key=val.get):08d}"
