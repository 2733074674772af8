"""A small RDT trains through Atlas's own loop: `atlas train` (a real subprocess) on synthetic data with a
camera, and the loop on a tiny RDT-layout HDF5 folder (two cameras, 14-d state, state noise, image aug);
the checkpoints load back as the rdt policy and sample chunks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from atlas.models.base import Policy
from atlas.models.rdt.policy import RDTPolicy
from tests.data.data_h5files import write_aloha

ROOT = Path(__file__).resolve().parents[2]
TINY_RDT = {
    "preset": "rdt", "action_horizon": 4, "unified_dim": 16,
    "fusion": {"width": 32, "depth": 2, "num_heads": 4},
    "language": {"name": "task_embedding", "dim": 16},
    "vision": {"name": "resnet_small", "width": 8, "size": None, "patch_size": None, "image_size": None, "freeze": False},
    "rdt": {"max_lang_cond_len": 4},
}
QUIET = {"progress_bar": False, "tensorboard": False}


def _losses(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [line["loss"] for line in lines if "loss" in line]


def _reload_and_sample(run: Path, state_dim: int, action_dim: int, cameras: int, image: int) -> None:
    policy = Policy.from_pretrained(run / "checkpoints" / "latest")
    assert isinstance(policy, RDTPolicy)
    obs = {"state": torch.zeros(2, 2, state_dim), "images": torch.zeros(2, 2, cameras, 3, image, image, dtype=torch.uint8)}
    chunk = policy.predict_action_chunk(obs, ["do it", "do it"])
    assert chunk.shape == (2, 4, action_dim) and torch.isfinite(chunk).all()


@pytest.mark.timeout(300)
def test_atlas_train_cli_on_synthetic_data(tmp_path):
    config = {
        "data": {"format": "synthetic", "batch_size": 4, "num_episodes": 6, "episode_length": 16, "state_dim": 6,
                 "action_dim": 3, "image_size": 32, "num_cameras": 1, "obs_horizon": 2},
        "training": {"learning_rate": 1e-3, "warmup_steps": 2, "max_steps": 6, "val_interval": 6,
                     "checkpoint_interval": 6, "log_interval": 1},
        "model": TINY_RDT,
        "logging": QUIET,
    }
    path = tmp_path / "rdt.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "atlas.cli", "train", "--config", str(path), "--output-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=280, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = _losses(tmp_path / "run")
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    assert "policy rdt:" in (tmp_path / "run" / "train.log").read_text()
    _reload_and_sample(tmp_path / "run", 6, 3, 1, 32)


@pytest.mark.timeout(300)
def test_loop_on_a_tiny_rdt_hdf5_folder(tmp_path):
    from atlas.config import load_config
    from atlas.train import train

    data = write_aloha(tmp_path / "data", episodes=3)
    overrides = [
        "data.format=aloha", f"data.path={data}", "data.batch_size=4", "data.obs_horizon=2",
        "data.state_noise_snr=40", "data.image_aug=true", "training.max_steps=4", "training.warmup_steps=0",
        "training.val_interval=4", "training.checkpoint_interval=4", "training.ema.enabled=false",
        "logging.tensorboard=false", "logging.progress_bar=false",
    ]
    model = [f"model.{k}={json.dumps(v)}" for k, v in TINY_RDT.items()]
    cfg = load_config(None, overrides + model + ["model.rdt.num_cameras=3"])
    train(cfg, tmp_path / "run")
    losses = _losses(tmp_path / "run")
    assert len(losses) >= 1 and all(torch.isfinite(torch.tensor(losses)))
    _reload_and_sample(tmp_path / "run", 14, 14, 2, 16)
