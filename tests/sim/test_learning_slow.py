"""End to end: expert reach-v3 demos → the real training loop → closed-loop success, against chance.

The issue asked for 20 demos. On 2026-11-30 the 20-demo recipe, unchanged and training identically to
the code of a week before, reached 65 % on the 20 test episodes (72 % on 50). Eight variants of it (steps,
width, dropout, weight decay, noise, chunk length) gave 50-86 %. The policy stops 2-7 cm short in z on
goals its 18 training goals do not surround (Meta-World counts success within 5 cm). With 50 demos,
3000 steps and the whole 8-step chunk executed, three training seeds gave 98 / 98 / 90 % on 50 episodes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.sim.helpers import REPO, run_atlas, tiny_policy

pytestmark = [pytest.mark.sim, pytest.mark.slow]


@pytest.mark.timeout(1200)
def test_trained_state_policy_solves_reach_and_random_does_not(tmp_path):
    from atlas.sim import collect, evaluate_policy
    from atlas.sim.rollout import RolloutSpec

    data = tmp_path / "reach.hdf5"
    collect("reach-v3", 50, data, cameras="", seed=0, progress=False)
    config = {
        "data": {"format": "robomimic", "path": str(data), "batch_size": 64, "val_ratio": 0.0},
        "training": {
            "learning_rate": 1.0e-3, "lr_scheduler": "cosine", "warmup_steps": 50, "max_steps": 3000,
            "val_interval": 0, "checkpoint_interval": 3000, "log_interval": 100, "weight_decay": 0.0,
        },
        "model": {"preset": "mlp", "action_horizon": 8, "hidden_dim": 256, "num_layers": 3},
        "logging": {"progress_bar": False, "tensorboard": False},
    }
    (tmp_path / "reach.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    train = subprocess.run(
        [sys.executable, "-m", "atlas.train", "--config", str(tmp_path / "reach.yaml"), "--output-dir", str(run)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert train.returncode == 0, train.stderr[-3000:]

    proc = run_atlas("eval", "--checkpoint", str(run), "--tasks", "reach-v3", "--episodes", "20", "--exec-horizon", "8",
                     "--max-steps", "200", "--out", str(tmp_path / "eval.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = json.loads((tmp_path / "eval.json").read_text())
    assert trained["tasks"]["reach-v3"]["episodes"] == 20
    assert trained["success_rate"] >= 0.8, trained["tasks"]

    # an untrained policy of the same shape drifts along the mean action: reach goals close to the start
    # are met by chance (measured 10-30% over four inits on these seeds), far below the trained policy
    random_init = tiny_policy(data, action_horizon=8, hidden_dim=256, seed=0)
    chance = evaluate_policy(random_init, ["reach-v3"], 20, RolloutSpec(exec_horizon=8, max_steps=200))
    assert chance["success_rate"] <= 0.3, chance["tasks"]
    assert trained["success_rate"] - chance["success_rate"] >= 0.5
