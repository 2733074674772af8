"""Hostile and careless configs and overrides through the real CLI: one message naming the key, never a
traceback, never a silent wrong result, bounded memory (see hostile_cli.py for what each case asserts)."""

from __future__ import annotations

import pytest
from hostile_cli import Case, judge, run_cases, write

TINY = """\
data: {format: synthetic, num_episodes: 8, episode_length: 12, state_dim: 6, action_dim: 3}
model: {preset: mlp, hidden_dim: 32, num_layers: 2, action_horizon: 6}
training: {max_steps: 2, val_interval: 0, checkpoint_interval: 2}
logging: {progress_bar: false, tensorboard: false}
"""
DUPLICATE = """\
data: {format: synthetic, num_episodes: 8, episode_length: 12, state_dim: 6, action_dim: 3}
model: {preset: mlp, hidden_dim: 32, num_layers: 2, action_horizon: 6}
training:
  max_steps: 2
  learning_rate: 1.0e-3
  ema: {enabled: true}
  learning_rate: 1.0e-4
"""
# eight lines of anchors: 9**8 = 43 million values once expanded
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh"))


def config(text: str, name: str = "c.yaml"):
    return lambda d: write(d, {name: text})


def train(*overrides: str, cfg: str = "c.yaml") -> list[str]:
    return ["train", "--config", cfg, "--output-dir", "run", *overrides]


def tiny_with(extra: str):
    return config(TINY + extra)


CASES = [
    # non-finite and absurd hyperparameters (today: NaN weights after step 1, exit 0, NaN `best`)
    Case("lr-inf-yaml", train(),
         setup=config(TINY.replace("checkpoint_interval: 2}", "checkpoint_interval: 2, learning_rate: .inf}")),
         names=["training.learning_rate"]),
    Case("lr-nan-override", train("training.learning_rate=.nan"), setup=tiny_with(""), names=["training.learning_rate"]),
    Case("lr-above-1", train("training.learning_rate=5"), setup=tiny_with(""), names=["training.learning_rate"]),
    Case("weight-decay-1e400", train("training.weight_decay=1e400"), setup=tiny_with(""), names=["training.weight_decay"]),
    Case("adam-eps-1e999", train("training.adam_eps=1e999"), setup=tiny_with(""), names=["training.adam_eps"]),
    Case("adam-beta-1", train("training.adam_betas=[0.9,1.0]"), setup=tiny_with(""), names=["training.adam_betas"]),
    Case("adam-beta-negative", train("training.adam_betas=[-0.1,0.9]"), setup=tiny_with(""), names=["training.adam_betas"]),
    Case("seed-negative", train("training.seed=-1"), setup=tiny_with(""), names=["training.seed"]),
    Case("seed-huge", train(f"training.seed={2**70}"), setup=tiny_with(""), names=["training.seed"]),
    Case("lr-multiplier-inf", train("training.lr_multipliers={fusion: .inf}"), setup=tiny_with(""),
         names=["training.lr_multipliers"]),
    Case("batch-1e12", train("data.batch_size=1e12"), setup=tiny_with(""), names=["data.batch_size"]),
    Case("max-steps-0", train("training.max_steps=0"), setup=tiny_with(""), names=["training.max_steps"]),
    Case("hidden-dim-huge", train("model.hidden_dim=100000000"), setup=tiny_with(""), names=["model.hidden_dim"]),
    Case("episodes-huge", train("data.num_episodes=1e9"), setup=tiny_with(""), names=["data.num_episodes"]),
    # YAML that silently keeps the last of two values
    Case("duplicate-key", train(), setup=config(DUPLICATE), names=["'learning_rate'", "line 5", "line 7"]),
    Case("repeated-section", train(), setup=config(TINY + "training: {ema: {enabled: false}}\n"),
         names=["'training'", "line 3", "line 5"]),
    # bounded input sizes
    Case("billion-laughs-train", train(), setup=config(LAUGHS), names=["c.yaml", "aliases"]),
    Case("billion-laughs-plan", ["plan", "--config", "c.yaml"], setup=config(LAUGHS), names=["c.yaml", "aliases"]),
    Case("billion-laughs-doctor", ["doctor", "c.yaml"], setup=config(LAUGHS), names=["c.yaml", "aliases"]),
    Case("recursive-alias", train(), setup=config("data: &a [*a]\n"), names=["c.yaml", "alias"]),
    Case("nested-10000", ["plan", "--config", "c.yaml"], setup=config("a: " + "[" * 10000 + "]" * 10000 + "\n"),
         names=["c.yaml", "nested"]),
    Case("config-5mb", train(), setup=config(TINY + "#" * (5 * 2**20) + "\n"), names=["c.yaml", "larger than"]),
    Case("config-dev-zero", train(cfg="/dev/zero"), names=["/dev/zero", "not a regular file"]),
    Case("config-folder", train(cfg="."), setup=lambda d: None, names=["is a folder"]),
    Case("config-missing", train(cfg="nope.yaml"), names=["nope.yaml", "does not exist"]),
    Case("config-not-utf8", train(), setup=config(TINY.encode() + b"# caf\xe9\n"), names=["c.yaml", "UTF-8", "line 5"]),
    Case("config-binary", train(), setup=config(b"\x00\x01\x02" * 100), names=["c.yaml", "NUL"]),
    Case("config-a-list", train(), setup=config("- data\n- model\n"), names=["c.yaml", "mapping"]),
    # messages that pointed the wrong way
    Case("quoted-2.0-stays-a-string", ["plan", "--config", "c.yaml"], setup=config('model: {preset: "2.0"}\n'),
         names=["model.preset", "'2.0'"], check=lambda d, o: _not_in(o, "valid string")),
    Case("override-after-resume", train("--resume", "auto", "training.max_steps=many"), setup=tiny_with(""),
         names=["training.max_steps"], check=lambda d, o: _not_in(o, "unrecognized")),
    Case("override-without-equals", train("training.max_steps"), setup=tiny_with(""), names=["training.max_steps", "KEY=VALUE"]),
    Case("typo-did-you-mean", train("training.learnig_rate=1e-4"), setup=tiny_with(""),
         names=["training.learnig_rate", "did you mean training.learning_rate"]),
    Case("warmup-longer-than-run", train("training.warmup_steps=10"), setup=tiny_with(""),
         names=["training.warmup_steps", "training.max_steps"]),
    Case("unknown-flag", train("--learning-rate", "1"), setup=tiny_with(""), names=["--learning-rate"]),
    # security canaries: nothing in a config or override is ever executed
    Case("python-tag-in-yaml", train(), setup=config('data: !!python/object/apply:os.system ["touch pwned"]\n'),
         names=["c.yaml"], absent=["pwned"]),
    Case("python-tag-in-override", train("data.path=!!python/object/apply:os.system [touch pwned]"),
         setup=tiny_with(""), names=["data.path"], absent=["pwned"]),
]


def _not_in(outcome, text: str) -> None:
    assert text not in outcome.stderr, outcome.stderr


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(CASES, tmp_path_factory.mktemp("hostile-config"))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_config(case, outcomes):
    judge(case, outcomes[case.id])
