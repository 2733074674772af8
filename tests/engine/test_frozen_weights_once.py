"""Frozen weights are written once per run: later checkpoints hard-link the first one's `frozen.safetensors`,
reuse its SHA-256, stay whole on their own (retention, copies, eval, resume), and a kill or a full disk during
a linking save never damages the checkpoint that shares the file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from reliability_proc import Train, kill_in_save  # noqa: E402
from train_helpers import final_weights, straight_and_resumed, train_run  # noqa: E402

from atlas.engine.checkpoint import CheckpointStore, load_weights, verify  # noqa: E402
from atlas.engine.frozen_weights import FrozenWeights  # noqa: E402
from atlas.engine.weight_files import FROZEN_NAME  # noqa: E402

FROZEN = ["training.lr_multipliers={task_embedding: 0.0, fusion.0: 0.0}", "training.max_steps=6",
          "training.checkpoint_interval=2", "training.ema.enabled=true", "training.ema.decay=0.5",
          "training.seed=3"]
FROZEN_PREFIXES = ("task_embedding.", "fusion.0.")


def _sha(folder: Path, rel: str) -> str:
    return json.loads((folder / "manifest.json").read_text())["files"][rel]["sha256"]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_frozen_file_is_written_once_and_every_kept_checkpoint_reads_whole(tmp_path, asynchronous):
    run = tmp_path / "run"
    train_run(run, FROZEN + ["training.checkpoints_total_limit=2", f"training.async_checkpoint={asynchronous}"])
    store = CheckpointStore(run / "checkpoints")
    kept = store.step_dirs()
    assert [p.name for p in kept] == ["step_00000004", "step_00000006"]  # step 2 pruned by retention
    inodes = {(p / FROZEN_NAME).stat().st_ino for p in kept}
    assert len(inodes) == 1, "each checkpoint wrote its own frozen file"
    assert (kept[-1] / FROZEN_NAME).stat().st_nlink == 2  # step 2's link went with its folder, not the data
    assert _sha(kept[0], FROZEN_NAME) == _sha(kept[1], FROZEN_NAME)
    for folder in kept:
        assert verify(folder) is None  # sizes and checksums of every file, the linked one included
        raw = load_file(str(folder / "model.safetensors"))
        frozen = load_file(str(folder / FROZEN_NAME))
        assert frozen and all(k.startswith(FROZEN_PREFIXES) for k in frozen)
        assert not any(k.startswith(FROZEN_PREFIXES) for k in raw)  # trained tensors and buffers only
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            assert f.metadata() == {"atlas.rest": "frozen"}
        whole = load_weights(folder / "model.safetensors")
        assert whole.keys() == raw.keys() | frozen.keys()
        ema_whole = load_weights(folder / "ema" / "model.safetensors")  # EMA -> raw -> frozen
        assert ema_whole.keys() == whole.keys()
        assert all(torch.equal(ema_whole[k], frozen[k]) for k in frozen)

    from atlas.sim.checkpoint import load_checkpoint

    policy = load_checkpoint(run, "raw").policy  # what `atlas eval` loads
    state = policy.state_dict()
    whole = final_weights(run)
    assert all(torch.equal(state[k], whole[k]) for k in whole)


def test_resume_links_the_checkpoint_it_resumed_from_and_matches_a_straight_run(tmp_path, monkeypatch):
    straight, resumed = straight_and_resumed(tmp_path, FROZEN, 3, monkeypatch)
    ckpts = resumed / "checkpoints"
    assert (ckpts / "step_00000004" / FROZEN_NAME).stat().st_ino == (ckpts / "step_00000003" / FROZEN_NAME).stat().st_ino
    a, b = final_weights(straight), final_weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_file_copied_without_its_frozen_weights_is_one_clear_error(tmp_path):
    from atlas.engine.checkpoint import CheckpointError

    run = tmp_path / "run"
    train_run(run, FROZEN)
    lonely = tmp_path / "copy"
    lonely.mkdir()
    (lonely / "model.safetensors").write_bytes((run / "checkpoints" / "latest" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"model.safetensors: holds only the trained tensors.*frozen.safetensors"):
        load_weights(lonely / "model.safetensors")


def test_a_frozen_weight_changed_in_place_or_unfrozen_is_written_again(tmp_path):
    """The decision itself, on real files: reuse only while names, shapes, storage and versions are unchanged."""
    from atlas.engine.checkpoint import write_manifest

    torch.manual_seed(0)
    policy = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    policy[0].requires_grad_(False)
    fw = FrozenWeights(policy)

    def save(folder: Path):
        weights = dict(policy.state_dict())
        plan = fw.plan(weights)
        folder.mkdir()
        tensors = None if plan.reuse else {n: weights[n] for n in plan.names}
        known = fw.place(plan, folder / FROZEN_NAME, tensors)
        write_manifest(folder, known)
        fw.sealed(plan, folder)
        return plan, known

    first, known = save(tmp_path / "a")
    assert first.names == ("0.weight", "0.bias") and first.reuse is None and known == {}
    second, known = save(tmp_path / "b")
    assert second.reuse == tmp_path / "a" / FROZEN_NAME and known == {FROZEN_NAME: _sha(tmp_path / "a", FROZEN_NAME)}
    assert verify(tmp_path / "b") is None
    with torch.no_grad():
        policy[0].weight.mul_(2.0)  # an in-place write bumps the version counter
    third, _ = save(tmp_path / "c")
    assert third.reuse is None
    assert torch.equal(load_file(str(tmp_path / "c" / FROZEN_NAME))["0.weight"], policy[0].weight)
    assert torch.equal(load_file(str(tmp_path / "a" / FROZEN_NAME))["0.weight"] * 2, policy[0].weight)  # a untouched
    policy[0].bias.requires_grad_(True)  # unfrozen: the frozen set changed
    fourth, _ = save(tmp_path / "d")
    assert fourth.names == ("0.weight",) and fourth.reuse is None


def test_a_full_disk_while_linking_leaves_the_shared_file_and_earlier_checkpoints_intact(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_INJECT_ENOSPC_AT_STEP", f"4:{FROZEN_NAME}")
    run = tmp_path / "run"
    train_run(run, FROZEN + ["training.on_save_error=continue"])
    ckpts = run / "checkpoints"
    assert not (ckpts / "step_00000004").exists()
    assert not list(ckpts.glob(".tmp-*"))
    for step in (2, 6):
        assert verify(ckpts / f"step_{step:08d}") is None


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_minus_9_in_a_linking_save_then_resume_is_bitwise_equal(tmp_path):
    run_args = FROZEN + ["training.max_steps=8", "training.log_interval=1"]
    reference = Train(tmp_path / "reference", run_args)
    kill_in_save(tmp_path / "killed", run_args, 2, "files", "injected pause in the save")  # step 4's save links
    store = CheckpointStore(tmp_path / "killed" / "checkpoints")
    assert store.pointer("latest").name == "step_00000002"
    assert verify(store.pointer("latest")) is None  # the file step 4 linked is step 2's, unharmed
    final = Train(tmp_path / "killed", run_args, resume="auto")
    assert final.wait() == 0, final.stderr()[-3000:]
    assert reference.wait() == 0, reference.stderr()[-3000:]
    for name in ("model.safetensors", "ema/model.safetensors"):
        a = load_weights(tmp_path / "reference" / "checkpoints" / "latest" / name)
        b = load_weights(tmp_path / "killed" / "checkpoints" / "latest" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
