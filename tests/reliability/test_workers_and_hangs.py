"""Data-loader workers that fail or die are reported with their error, never as a hang; a hang is
reported by the watchdog with the stack of every thread (training.hang_timeout_s)."""

from __future__ import annotations

import io
import os
import threading
import time

import h5py
import numpy as np
import pytest
from train_helpers import train_run

from atlas.data.episodes import ArraySource, EpisodeInfo
from atlas.data.errors import DataError
from atlas.data.registry import register_format

WORKERS = ["data_loading.num_workers=2", "training.max_steps=30", "training.val_interval=0",
           "training.checkpoint_interval=100"]


def _aloha_with_broken_frames(folder) -> str:
    """A real ALOHA-layout episode (RDT's fine-tuning files: JPEG bytes per frame) whose frames from step 6
    on are garbage; frame 0, which start-up reads for the image size, is a good JPEG."""
    from PIL import Image

    good = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(good, format="JPEG")
    frames = [good.getvalue()] * 6 + [b"\xff\xd8 not a jpeg at all"] * 34
    path = folder / "task_a" / "episode_0.hdf5"
    path.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("action", data=rng.normal(size=(40, 14)).astype(np.float32))
        f.create_dataset("observations/qpos", data=rng.normal(size=(40, 14)).astype(np.float32))
        f.create_dataset("observations/images/cam_high", data=np.array(frames, dtype=f"S{len(good.getvalue())}"))
    return str(folder)


@pytest.mark.timeout(120)
def test_a_worker_that_fails_on_a_bad_file_is_reported_with_its_error(tmp_path):
    folder = _aloha_with_broken_frames(tmp_path / "data")
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        train_run(tmp_path / "run", ["data.format=aloha", f"data.path={folder}", "data.val_ratio=0", *WORKERS])
    text = str(caught.value)
    assert "DataLoader worker process" in text and "episode_0.hdf5" in text and "observations/images/cam_high" in text
    assert time.monotonic() - started < 60


class _DiesInWorkers(ArraySource):
    """Episodes in memory whose reads kill the reading process outright when it is a DataLoader worker
    (what a segfaulting decoder or the OOM killer does to a worker): no exception, no traceback."""

    parent = os.getpid()

    def _die_if_in_a_worker(self, key, episodes):
        if os.getpid() != self.parent and key == "action" and 1 in episodes:
            os._exit(7)

    def read(self, episode, key, rows):
        self._die_if_in_a_worker(key, [episode])
        return super().read(episode, key, rows)

    def read_batch(self, episodes, key, rows):  # the path StepDataset takes for a micro-batch
        self._die_if_in_a_worker(key, episodes.tolist())
        return super().read_batch(episodes, key, rows)


@register_format("test-dies-in-workers")
def _dies_in_workers(cfg, seed):
    rng = np.random.default_rng(seed)
    episodes = [{"state": rng.normal(size=(20, 6)).astype(np.float32), "action": rng.normal(size=(20, 3)).astype(np.float32)}
                for _ in range(4)]
    return _DiesInWorkers(episodes, [EpisodeInfo("t", "do t")] * 4, [])


@pytest.mark.timeout(120)
def test_a_worker_that_dies_without_a_word_is_reported_not_waited_on(tmp_path):
    started = time.monotonic()
    # torch reports it as "worker (pid(s) N)" from its watchdog or "worker (pid N)" from the status check, by timing
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid(?:\(s\))? [\d, ]+\) exited unexpectedly"):
        train_run(tmp_path / "run", ["data.format=test-dies-in-workers", "data.val_ratio=0", *WORKERS])
    assert time.monotonic() - started < 60


@pytest.mark.timeout(120)
def test_watchdog_logs_every_threads_stack_when_no_step_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INJECT_HANG_AT_STEP", "3:2.5")
    train_run(tmp_path, ["training.max_steps=5", "training.hang_timeout_s=1", "training.val_interval=0"])
    log = (tmp_path / "train.log").read_text()
    assert "ERROR watchdog: no optimizer step finished for 1 s (training.hang_timeout_s=1; current step 3)" in log
    dump = log.split("stacks of all threads:", 1)[1]
    assert "--- thread MainThread" in dump and "--- thread atlas-watchdog" in dump
    assert "in _hang" in dump and "time.sleep(self.hang_s)" in dump  # where the main thread is stuck
    assert not any(t.name == "atlas-watchdog" for t in threading.enumerate()), "watchdog outlived the run"


@pytest.mark.timeout(120)
def test_watchdog_stays_quiet_while_steps_finish(tmp_path):
    train_run(tmp_path, ["training.max_steps=20", "training.hang_timeout_s=1.5", "training.val_interval=0"])
    assert "watchdog:" not in (tmp_path / "train.log").read_text()
