"""Real multi-process training on CPU (torchrun, gloo, 2 ranks): equivalence with one process, one
gradient all-reduce per optimizer step, OOM back-off on one rank, resume on 2 and on 1 rank, and the
accelerate CPU trap."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from extras import require_extra
from train_helpers import TINY, assert_close, assert_resumed_at, assert_same_curves, final_weights, read_metrics, torchrun, train_run

pytestmark = [pytest.mark.slow]
HERE = Path(__file__).resolve().parent
BASE = ["training.max_steps=20", "training.val_interval=10", "training.checkpoint_interval=10",
        "training.lr_scheduler=cosine", "training.warmup_steps=3", "training.learning_rate=3e-3",
        "data.num_episodes=12", "training.log_interval=1"]


@pytest.fixture()
def empty_config(tmp_path) -> Path:
    """An empty config of the test's own (not in the source tree: tests of this module may run in parallel)."""
    path = tmp_path / "empty.yaml"
    path.write_text("{}\n")
    return path


@pytest.mark.timeout(300)
def test_two_ranks_equal_one_rank_and_resume_on_two_and_one(tmp_path):
    two = BASE + ["data.batch_size=4", "training.gradient_accumulation_steps=2"]
    proc = torchrun(tmp_path / "two", two)
    assert "Distributed training: world_size=2, rank=0" in proc.stderr
    assert "Distributed training: world_size=2, rank=1" in proc.stderr
    train_run(tmp_path / "one", BASE + ["data.batch_size=4", "training.gradient_accumulation_steps=4"])
    plans = [json.loads((tmp_path / r / "plan.json").read_text()) for r in ("two", "one")]
    assert plans[0]["effective_batch_size"] == plans[1]["effective_batch_size"] == 16
    assert (plans[0]["world_size"], plans[1]["world_size"]) == (2, 1)
    reference = final_weights(tmp_path / "two")
    assert_close(reference, final_weights(tmp_path / "one"))
    # per step: the same loss and the same gradient norm (a dropped world-size factor halves grad_norm
    # while Adam keeps the final weights within 5e-5)
    assert_same_curves(tmp_path / "two", tmp_path / "one")

    # stopped at step 7 (graceful, both ranks agree), resumed on 2 ranks: bitwise equal
    torchrun(tmp_path / "cut", two, env={"ATLAS_STOP_AT_STEP": "7"})
    shutil.copytree(tmp_path / "cut", tmp_path / "cut_one", symlinks=True)
    before = len(read_metrics(tmp_path / "cut"))
    torchrun(tmp_path / "cut", two, resume="auto")
    assert_resumed_at(read_metrics(tmp_path / "cut")[before:], 7)
    resumed = final_weights(tmp_path / "cut")
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)

    # the same checkpoint resumed on 1 rank: effective batch kept by doubling accumulation, and said so
    assert train_run(tmp_path / "cut_one", two, resume="auto")["resumed_from_step"] == 7
    log = (tmp_path / "cut_one" / "train.log").read_text()
    assert "resuming a 2-process run on 1: effective batch stays 16, accumulation 2→4" in log
    assert json.loads((tmp_path / "cut_one" / "plan.json").read_text())["gradient_accumulation_steps"] == 4
    assert_close(reference, final_weights(tmp_path / "cut_one"))


@pytest.mark.timeout(300)
def test_oom_on_rank_one_backs_off_and_matches_the_halved_run(tmp_path):
    # The halved run splits each step into other micro-batches, so float sums associate differently.
    # With the MLP's L1 loss a bias gradient can cancel to exactly 0 in one order and 1e-9 in the other,
    # which Adam with eps 1e-8 turns into a full LR-sized step; eps 1e-6 keeps that noise below 1e-5
    # while any real difference (wrong samples, lost gradients) stays far above it.
    common = BASE + ["memory_optimization.dynamic_batch_size=true", "training.adam_eps=1e-6"]
    proc = torchrun(tmp_path / "oom", common + ["data.batch_size=4", "training.gradient_accumulation_steps=2"],
                    env={"ATLAS_INJECT_OOM_AT_STEP": "5:1"})
    assert "OOM at step 5: micro_batch 4→2, accumulation 2→4" in proc.stderr
    torchrun(tmp_path / "halved", common + ["data.batch_size=2", "training.gradient_accumulation_steps=4"])
    assert_close(final_weights(tmp_path / "halved"), final_weights(tmp_path / "oom"))
    # the manual-sync DDP (dynamic_batch_size) averages its flat all-reduce over ranks: one process with
    # the same effective batch logs the same loss and gradient norm at every step
    train_run(tmp_path / "one", common + ["data.batch_size=4", "training.gradient_accumulation_steps=4"])
    assert_same_curves(tmp_path / "halved", tmp_path / "one")
    assert_same_curves(tmp_path / "halved", tmp_path / "oom")
    state = json.loads((tmp_path / "oom" / "checkpoints" / "latest" / "trainer_state.json").read_text())
    assert (state["micro_batch_size"], state["gradient_accumulation_steps"], state["effective_batch_size"]) == (2, 4, 16)


@pytest.mark.timeout(120)
def test_one_gradient_allreduce_per_optimizer_step(tmp_path):
    out = tmp_path / "counts.json"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(HERE / "comm_count_worker.py"), str(out)], check=True, timeout=100, capture_output=True)
    counts = json.loads(out.read_text())
    assert counts["1"] >= 1 and counts["4"] == counts["1"]  # accumulation 4 adds no all-reduce


@pytest.mark.timeout(120)
def test_accelerate_cpu_mode_is_caught(tmp_path, empty_config):
    require_extra("test", "accelerate")
    proc = subprocess.run(
        ["accelerate", "launch", "--cpu", "--num_processes", "2", "-m", "atlas.train", "--config",
         str(empty_config), "--output-dir", str(tmp_path / "run"), *TINY],
        capture_output=True, text=True, timeout=100,
    )
    assert proc.returncode != 0
    assert "asked for 2 processes but started this one with WORLD_SIZE=1" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_oom_give_up_at_micro_batch_one():
    from atlas.engine.oom import OOMGiveUp, halve

    assert halve(32, 1, 3)[:2] == (16, 2)
    assert halve(6, 1, 3)[:2] == (3, 2)
    assert halve(3, 2, 3)[:2] == (1, 6)
    with pytest.raises(OOMGiveUp, match="micro-batch 1"):
        halve(1, 8, 3)


@pytest.mark.timeout(180)
def test_legacy_torch_distributed_launch_form(tmp_path, empty_config):
    """Seed 001's `python -m torch.distributed.launch --nproc_per_node=N atlas/train.py ...` (passes --local-rank)."""
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.launch", "--nproc_per_node=2", "--master_port=29531",
         str(HERE.parents[1] / "atlas" / "train.py"), "--config", str(empty_config),
         "--output-dir", str(tmp_path / "run"), *TINY, "training.max_steps=3"],
        capture_output=True, text=True, timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Distributed training: world_size=2, rank=1" in proc.stderr
    assert json.loads((tmp_path / "run" / "plan.json").read_text())["world_size"] == 2
