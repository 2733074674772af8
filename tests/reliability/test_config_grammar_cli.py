"""A few of the grammar fuzz's overrides through the real `atlas train` (hostile_cli.py's harness): a bad
one exits 2 with one line naming the key; valid ones land in the run's config.yaml."""

from __future__ import annotations

import pytest
import yaml
from hostile_cli import Case, judge, run_cases, write

TINY = """\
data: {format: synthetic, num_episodes: 8, episode_length: 12, state_dim: 6, action_dim: 3}
model: {preset: mlp, hidden_dim: 32, num_layers: 2, action_horizon: 6}
training: {max_steps: 2, val_interval: 0, checkpoint_interval: 2}
logging: {progress_bar: false, tensorboard: false}
"""
VALID = {"training.mixed_precision": ("off", "no"), "data.normalization": ("off", "none"), "training.lr_scaling": ("No", "none"),
         "data.image_aug": ("on", {"enabled": True}), "memory_optimization.num_workers": ("0", 0),
         "training.min_lr": ("0", 0.0)}


def _lands(folder, outcome) -> None:
    saved = yaml.safe_load((folder / "run" / "config.yaml").read_text())
    for key, (_, meant) in VALID.items():
        key = "data_loading.num_workers" if key == "memory_optimization.num_workers" else key
        section, name = key.split(".")
        got = saved[section][name]
        assert got == meant or (isinstance(meant, dict) and all(got[k] == v for k, v in meant.items())), (key, got)


def train(*overrides: str) -> list[str]:
    return ["train", "--config", "c.yaml", "--output-dir", "run", *overrides]


def tiny(d):
    write(d, {"c.yaml": TINY})


CASES = [
    Case("valid-words-land", train(*(f"{k}={raw}" for k, (raw, _) in VALID.items())), rc=0, setup=tiny, check=_lands),
    Case("union-one-line", train("data.normalization=3"), setup=tiny, names=["data.normalization:", "valid string or a valid dictionary"]),
    Case("lora-did-you-mean", train("model.lora.rnak=4"), setup=tiny, names=["did you mean model.lora.rank?"]),
    Case("seed-place-named-as-written", train("memory_optimization.num_workers=-1"), setup=tiny,
         names=["memory_optimization.num_workers:", "greater than or equal to 0"]),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(CASES, tmp_path_factory.mktemp("grammar-cli"))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_grammar_override_through_the_cli(case, outcomes):
    judge(case, outcomes[case.id])
    if case.rc:
        assert len([line for line in outcomes[case.id].stderr.splitlines() if line.startswith("  ")]) <= 1, outcomes[case.id].stderr
