"""`training.compile`: the per-block torch.compile gives the eager loop's losses (fp32, with gradient
accumulation and checkpointing), resumes bitwise, keeps compile time out of samples_per_s, and the CUDA-graph
modes are refused where they cannot work. The loop's phase timers are in metrics.jsonl."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from train_helpers import REPO, final_weights, read_metrics, train_run

TINY_TRANSFORMER = ["model.preset=atlas-tiny", "data.image_size=32", "training.gradient_accumulation_steps=2",
                    "memory_optimization.gradient_checkpointing=true", "training.log_interval=1",
                    "training.val_interval=0", "training.warmup_steps=0"]


def losses(run_dir) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


def _compare(tmp_path, backend: str, steps: int) -> None:
    run = [*TINY_TRANSFORMER, f"training.max_steps={steps}", f"training.checkpoint_interval={steps}"]
    train_run(tmp_path / "eager", run)
    summary = train_run(tmp_path / "compiled", run + ["training.compile=true", f"training.compile_backend={backend}"])
    eager, compiled = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert len(eager) == len(compiled) == steps
    assert max(abs(a - b) for a, b in zip(eager, compiled)) <= 1e-5, (eager, compiled)
    log = (tmp_path / "compiled" / "train.log").read_text()
    assert "torch.compile (" in log and "fusion.blocks.0-1" in log and "excluded from samples_per_s" in log
    assert summary["time_s"]["compile"] > 0
    first = read_metrics(tmp_path / "compiled")[0]
    assert "samples_per_s" not in first  # step 1 compiled: a window of compile time only has no throughput


@pytest.mark.timeout(300)
def test_compiled_blocks_give_the_eager_losses_with_accumulation_and_checkpointing(tmp_path):
    """aot_eager traces forward and backward through dynamo and AOTAutograd, as inductor does, without
    generating kernels: the graph capture and the in-place module compile are what is under test here."""
    _compare(tmp_path, "aot_eager", 20)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_inductor_compiled_blocks_give_the_eager_losses(tmp_path):
    """The default backend, generating C++ kernels on this CPU: fp32 losses within 1e-5 over 20 steps."""
    _compare(tmp_path, "inductor", 20)


@pytest.mark.timeout(300)
def test_a_compiled_run_resumes_bitwise(tmp_path):
    common = [*TINY_TRANSFORMER, "training.checkpoint_interval=4", "training.compile=true",
              "training.compile_backend=aot_eager", "training.lr_scheduler=constant"]
    run = [*common, "training.max_steps=8"]
    train_run(tmp_path / "straight", run)
    train_run(tmp_path / "cut", [*common, "training.max_steps=4"])
    summary = train_run(tmp_path / "cut", run, resume="auto")
    assert summary["final_step"] == 8
    resumed = [r["step"] for r in read_metrics(tmp_path / "cut") if "loss" in r]
    assert resumed == [1, 2, 3, 4, 5, 6, 7, 8]  # resumed at 4, first new line is step 5
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune"])
def test_cuda_graph_modes_are_refused_under_accumulation(tmp_path, mode):
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "atlas.cli", "train", "--config", str(config), "--output-dir", str(tmp_path / "r"),
         "data.format=synthetic", "training.gradient_accumulation_steps=2", "training.compile=true",
         f"training.compile_mode={mode}"], capture_output=True, text=True, cwd=REPO, timeout=100)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"training.compile_mode={mode} captures CUDA graphs" in proc.stderr
    assert "gradient accumulation (2 micro-batches per step)" in proc.stderr
    assert "max-autotune-no-cudagraphs" in proc.stderr


@pytest.mark.timeout(120)
def test_phase_times_are_in_metrics_jsonl(tmp_path):
    summary = train_run(tmp_path, ["training.max_steps=6", "training.log_interval=3", "training.checkpoint_interval=3",
                                   "training.val_interval=3", "training.warmup_steps=0"])
    lines = [r for r in read_metrics(tmp_path) if "loss" in r]
    for key in ("time/data_wait_ms", "time/step_ms", "time/checkpoint_ms", "time/forward_backward_ms",
                "time/optimizer_ms", "time/validation_ms"):
        assert all(isinstance(r[key], float) and r[key] >= 0 for r in lines), key
    # the step contains its data wait, forward/backward and optimizer
    for r in lines:
        assert r["time/step_ms"] >= r["time/data_wait_ms"] + r["time/forward_backward_ms"] + r["time/optimizer_ms"] - 0.01
    # step 3's checkpoint and validation land in the next window (steps 4-6)
    assert lines[1]["time/checkpoint_ms"] > 0 and lines[1]["time/validation_ms"] > 0
    assert summary["time_s"]["loop"] >= summary["time_s"]["step"]
    assert "mfu" not in lines[0]  # CPU: no MFU
    assert json.loads((tmp_path / "plan.json").read_text())["steps_per_epoch"] > 0
