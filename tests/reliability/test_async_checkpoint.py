"""`training.async_checkpoint`: a SIGKILL while a checkpoint is being written in the background leaves
`latest` on the previous complete checkpoint, and `--resume auto` from there ends bitwise equal to an
uninterrupted run, as for synchronous saves. The kill lands inside the background write: the injector
pauses the second save's commit (files written, not yet renamed) in the writer thread."""

from __future__ import annotations

import pytest
import torch
from reliability_proc import Train, kill_in_save
from safetensors.torch import load_file

from atlas.engine.checkpoint import CheckpointStore, verify

RUN = ["training.max_steps=20", "training.checkpoint_interval=5", "training.val_interval=0", "training.log_interval=1",
       "training.lr_scheduler=cosine", "training.warmup_steps=3", "training.ema.enabled=true",
       "training.async_checkpoint=true", "model.dropout=0.1", "data.state_noise_snr=30"]


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["files", "rename", "pointer"])
@pytest.mark.timeout(300)
def test_kill_during_a_background_write_keeps_latest_and_resumes_bitwise(tmp_path, phase):
    reference = Train(tmp_path / "reference", RUN)
    kill_in_save(tmp_path / "killed", RUN, 2, phase, "injected pause in the save of step 10")
    store = CheckpointStore(tmp_path / "killed" / "checkpoints")
    latest = store.pointer("latest")
    if phase == "pointer":  # sealed and renamed, pointer not yet moved: the newer complete folder is used
        assert latest.name == "step_00000005" and verify(store.newest_complete()) is None
    else:
        assert latest.name == "step_00000005" and store.newest_complete().name == "step_00000005"
    resumed = Train(tmp_path / "killed", RUN, resume="auto")
    assert resumed.wait() == 0, resumed.stderr()[-3000:]
    start = 10 if phase == "pointer" else 5
    assert f"resumed from {tmp_path / 'killed' / 'checkpoints' / f'step_{start:08d}'} at step {start}" in resumed.new_log()
    assert [m["step"] for m in resumed.new_metrics() if "loss" in m][0] == start + 1
    assert reference.wait() == 0, reference.stderr()[-3000:]
    for name in ("model.safetensors", "ema/model.safetensors"):
        a = load_file(str(tmp_path / "reference/checkpoints/latest" / name))
        b = load_file(str(tmp_path / "killed/checkpoints/latest" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert not list((tmp_path / "killed" / "checkpoints").glob(".tmp-*"))


@pytest.mark.timeout(120)
def test_a_failed_background_write_stops_the_run_at_the_next_step_not_at_the_next_save(tmp_path, monkeypatch):
    """The loop looks at the background writer after every step: a disk-full failure of the save of step 4
    (ATLAS_INJECT_ENOSPC_AT_STEP, through the real writer thread) stops the run (training.on_save_error=stop)
    well before the save of step 8 would have joined the writer. Steps are slowed to ~0.6 s (slow reads), so
    the tiny write lands within a step or two even beside another busy test process (at ~0.2 s a step CI once saw
    it land only after step 8: the first save no longer imports torch.distributed.checkpoint on the training
    thread, which had given the writer a second's head start)."""
    from train_helpers import read_metrics, train_run

    from atlas.engine.checkpoint import SaveFailed

    monkeypatch.setenv("ATLAS_INJECT_ENOSPC_AT_STEP", "4")
    monkeypatch.setenv("ATLAS_INJECT_SLOW_READ_MS", "30")
    run = ["training.max_steps=16", "training.checkpoint_interval=4", "training.val_interval=0",
           "training.log_interval=1", "training.async_checkpoint=true", "data_loading.num_workers=0"]
    with pytest.raises(SaveFailed, match=r"could not write checkpoint step_00000004 \(writing manifest.json\): "
                                         r"OSError.*No space left on device.*training.on_save_error=stop"):
        train_run(tmp_path, run)
    last = max(m["step"] for m in read_metrics(tmp_path) if "loss" in m)
    assert 4 < last < 8, f"the failure of the save of step 4 was handled after step {last}"
    assert CheckpointStore(tmp_path / "checkpoints").pointer("latest") is None
    assert not list((tmp_path / "checkpoints").glob(".tmp-*")), "the failed write's temp folder was left"
