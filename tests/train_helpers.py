"""Helpers for tests: run the real training loop in-process on synthetic data (tests/ is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent

TINY = [
    "data.format=synthetic",
    "data.num_episodes=8",
    "data.episode_length=12",
    "data.state_dim=6",
    "data.action_dim=3",
    "model.preset=mlp",
    "model.hidden_dim=32",
    "model.num_layers=2",
    "model.action_horizon=6",
    "logging.progress_bar=false",
    "logging.tensorboard=false",
]


def train_run(run_dir: Path, overrides: list[str], resume: str | None = None) -> dict:
    from atlas.config import load_config
    from atlas.train import train

    cfg = load_config(None, TINY + overrides)
    return train(cfg, run_dir, resume=resume)


def straight_and_resumed(root: Path, overrides: list[str], stop_at: int, monkeypatch) -> tuple[Path, Path]:
    """Two runs of the same config under `root`: one straight through, one stopped after step `stop_at`
    (ATLAS_STOP_AT_STEP, as a signal would) and resumed with --resume auto; their run folders."""
    straight, resumed = Path(root) / "straight", Path(root) / "resumed"
    train_run(straight, overrides)
    monkeypatch.setenv("ATLAS_STOP_AT_STEP", str(stop_at))
    assert train_run(resumed, overrides)["final_step"] == stop_at
    monkeypatch.delenv("ATLAS_STOP_AT_STEP")
    train_run(resumed, overrides, resume="auto")
    return straight, resumed


def final_weights(run_dir: Path) -> dict:
    """The whole policy of the latest checkpoint (its frozen file included), as every Atlas reader sees it."""
    from atlas.engine.weight_files import read_weights

    return read_weights(Path(run_dir) / "checkpoints" / "latest" / "model.safetensors")


def read_metrics(run_dir: Path) -> list[dict]:
    from atlas.engine.metrics import metrics_records

    return metrics_records(run_dir)


def torchrun(run_dir: Path, overrides: list[str], env: dict | None = None, resume: str | None = None, nproc: int = 2,
             timeout: float = 240) -> subprocess.CompletedProcess:
    """The loop under `torchrun --standalone` (gloo on CPU), with TINY + overrides; fails with its stderr."""
    config = Path(run_dir).parent / "empty.yaml"
    config.write_text("{}\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "atlas.train", "--config", str(config), "--output-dir", str(run_dir)]
    if resume:
        cmd += ["--resume", resume]
    proc = subprocess.run(cmd + TINY + overrides, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def assert_close(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=atol, rtol=0), (name, (a[name] - b[name]).abs().max().item())


def first_logged_step(after: int, log_interval: int) -> int:
    """The first step after `after` that writes a training line (every log_interval-th step; the last step
    also writes one, which the tests here never reach first)."""
    return after + log_interval - after % log_interval


def assert_resumed_at(new_records: list[dict], step: int, log_interval: int = 1, trained: bool = True) -> None:
    """`new_records`: what one process appended to metrics.jsonl. It resumed from `step` (0: it started
    fresh, so it wrote no resume record) and its first training line is the first logged step after that:
    step + 1 at log_interval 1. A run that silently retrains from step 0 ends bitwise equal too (it is
    deterministic), so only this shows that the checkpoint was used. `trained=False`: the process may have
    been killed before it logged a step."""
    resumes = [r for r in new_records if "resumed_from_step" in r]
    if step == 0:
        assert not resumes, f"a fresh start wrote a resume record: {resumes}"
    else:
        assert resumes, f"expected the process to resume from step {step}; it wrote no resume record"
        assert new_records[0] is resumes[0] and len(resumes) == 1, "the resume record must be the process's first line"
        assert resumes[0]["resumed_from_step"] == step and resumes[0]["step"] == step, (resumes[0], step)
    steps = [r["step"] for r in new_records if "loss" in r]
    if trained or steps:
        assert steps, "the resumed process logged no training step"
        assert steps[0] == first_logged_step(step, log_interval), (f"resumed from {step}: first training line "
                                                                   f"at step {steps[0]}, expected {first_logged_step(step, log_interval)}")


def training_curves(run_dir: Path) -> dict[int, tuple[float, float]]:
    """{step: (loss, grad_norm)} from metrics.jsonl's training lines (log_interval 1: one per step)."""
    return {r["step"]: (r["loss"], r["grad_norm"]) for r in read_metrics(run_dir) if "loss" in r}


def assert_same_curves(a: Path, b: Path, rtol: float = 1e-6) -> None:
    """Per-step loss and grad_norm of two runs agree to `rtol` (relative; 1e-6 holds for the MLP, measured 1.6e-7). Final weights alone can hide a
    constant gradient scale (Adam divides it out: halved gradients move 20 steps' weights by ~5e-5), while
    grad_norm shows it at once (2x), and the loss shows wrong samples from the first step on."""
    ca, cb = training_curves(a), training_curves(b)
    assert ca and ca.keys() == cb.keys(), (sorted(ca), sorted(cb))
    for step in ca:
        for name, x, y in zip(("loss", "grad_norm"), ca[step], cb[step], strict=True):
            assert abs(x - y) <= rtol * max(abs(x), abs(y)), f"step {step}: {name} {x!r} vs {y!r} (rtol {rtol})"
