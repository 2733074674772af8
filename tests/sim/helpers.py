"""Shared pieces of the simulation tests: a small collected file and a tiny policy built from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def run_atlas(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m atlas.cli ...` from the repository root, as a user would run `atlas ...`."""
    return subprocess.run(
        [sys.executable, "-m", "atlas.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def tiny_policy(data_path: str | Path, action_horizon: int = 8, hidden_dim: int = 32, seed: int = 0):
    """An untrained `mlp` policy whose normalizer and meta come from the collected file."""
    import torch

    from atlas.data.config import DataConfig, DataLoadingConfig
    from atlas.data.registry import build_data
    from atlas.models.config import ModelConfig
    from atlas.models.registry import build_policy

    torch.manual_seed(seed)
    bundle = build_data(DataConfig(format="robomimic", path=str(data_path), val_ratio=0.0), DataLoadingConfig(), action_horizon, seed)
    cfg = ModelConfig(preset="mlp", action_horizon=action_horizon, hidden_dim=hidden_dim, num_layers=2)
    return build_policy(cfg, bundle.meta, bundle.normalizer)


def save_as_run(policy, run_dir: Path, obs_horizon: int = 1, step: int = 1, ema_state: dict | None = None) -> Path:
    """The run-folder layout the training loop writes: checkpoints/step_X + latest pointer + config.yaml."""
    ckpt = run_dir / "checkpoints" / f"step_{step:08d}"
    policy.save_pretrained(ckpt)
    if ema_state is not None:
        policy.save_pretrained(ckpt / "ema", state_dict=ema_state)
    config = {"data": {"obs_horizon": obs_horizon}, "model": policy.cfg.model_dump(mode="json")}
    (ckpt / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "checkpoints" / "latest").symlink_to(ckpt.name)
    return ckpt
