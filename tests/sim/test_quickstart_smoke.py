"""The main job itself, at tiny sizes: `quickstart.sh` with its own config (atlas/configs/train_config.yaml:
camera + state + frozen MiniLM, the flow head) collects MT10 demos, trains, evaluates every task, reports.
A broken quickstart (its config, the collection, the eval or the report) fails here, not on a user's machine."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from extras import require_extra
from train_helpers import REPO

MT10 = 10


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.timeout(900)
def test_quickstart_runs_end_to_end_at_tiny_sizes(tmp_path):
    require_extra("sim")
    env = {**os.environ, "SKIP_INSTALL": "1", "EPISODES": "2", "EVAL_EPISODES": "1", "WORKERS": "2",
           "DATA": str(tmp_path / "mt10.hdf5"), "RUN": str(tmp_path / "run"), "OMP_NUM_THREADS": "1", "SEED": "3",
           "TRAIN_ARGS": "training.max_steps=20 training.warmup_steps=2 training.val_interval=10 "
                         "training.checkpoint_interval=10"}
    proc = subprocess.run(["bash", "quickstart.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["effective_batch_size"] == 256  # the quickstart config's batch, as README says
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["model"]["preset"] == "atlas-small" and config["model"]["language"]["name"] == "minilm"
    assert config["model"]["head"]["denoiser"] == "mlp"  # the shipped config, not a stand-in
    assert config["training"]["seed"] == 3  # SEED reaches training.seed
    summary = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert len(summary["tasks"]) == MT10 and all(row["episodes"] == 1 for row in summary["tasks"].values())
    assert (tmp_path / "run" / "report" / "report.md").is_file()
    assert "Quickstart: policy success" in proc.stdout and "Quickstart time per phase" in proc.stdout
