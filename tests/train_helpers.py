"""Helpers for tests: run the real training loop in-process on synthetic data (tests/ is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

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


def final_weights(run_dir: Path) -> dict:
    return load_file(str(Path(run_dir) / "checkpoints" / "latest" / "model.safetensors"))


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
