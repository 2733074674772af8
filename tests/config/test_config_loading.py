"""Config: seeds' YAML loads, layering, round trip, and clear errors (exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from atlas.config import ConfigError, dump_config, load_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "seed_yaml"
# Seed blocks that are complete config fragments and must load as written.
LOADABLE = ["001_0", "001_1", "001_2", "001_4", "001_5", "003_0", "003_1", "003_2", "003_3", "004_0", "004_1", "004_2"]
# Seed fragments written without their section: Atlas must say which section the key belongs in.
MISPLACED = {"003_4": "data.batch_size", "003_5": "memory_optimization.max_memory_usage"}


@pytest.mark.parametrize("name", LOADABLE)
def test_seed_yaml_blocks_load_as_written(name):
    cfg = load_config(FIXTURES / f"{name}.yaml")
    assert cfg.data.batch_size > 0


def test_seed_values_land_in_the_canonical_fields():
    assert load_config(FIXTURES / "001_1.yaml").data.batch_size == 8  # seed 001 writes training.batch_size
    assert load_config(FIXTURES / "001_1.yaml").training.gradient_accumulation_steps == 4
    cfg = load_config(FIXTURES / "003_0.yaml")  # memory_optimization.* duplicates
    assert cfg.training.gradient_accumulation_steps == 2
    assert cfg.data_loading.num_workers == 16 and cfg.data_loading.prefetch_factor == 4
    assert load_config(FIXTURES / "001_2.yaml").training.lr_multipliers == {"lang_encoder": 0.1, "fusion": 1.0, "action_head": 1.0}
    assert load_config(FIXTURES / "004_1.yaml").training.learning_rate == pytest.approx(1e-4)


@pytest.mark.parametrize("name,suggestion", sorted(MISPLACED.items()))
def test_misplaced_seed_fragments_name_the_right_section(name, suggestion):
    with pytest.raises(ConfigError, match=f"did you mean {suggestion}"):
        load_config(FIXTURES / f"{name}.yaml")


def test_a_seed_fragment_listing_alternatives_names_the_repeated_key_and_its_lines():
    """Seed 001's block 3 lists three `val_interval:` alternatives; YAML would keep the last silently."""
    with pytest.raises(ConfigError, match="key 'val_interval' is given twice \\(on line 3 and on line 6\\)"):
        load_config(FIXTURES / "001_3.yaml")


def test_disagreeing_duplicate_keys_name_both(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  gradient_accumulation_steps: 2\nmemory_optimization:\n  gradient_accumulation_steps: 4\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "memory_optimization.gradient_accumulation_steps=4" in str(err.value)
    assert "training.gradient_accumulation_steps=2" in str(err.value)


def test_layering_profile_file_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("profile: gpu_24gb\ndata:\n  batch_size: 4\n")
    cfg = load_config(path, ["training.max_steps=50"])
    assert cfg.memory_optimization.gradient_checkpointing is True  # from the profile
    assert cfg.data.batch_size == 4  # the file beats the profile's 8
    assert cfg.training.max_steps == 50  # the override beats the file
    assert load_config(path, ["data.batch_size=2"]).data.batch_size == 2
    assert load_config(path, profile="gpu_80gb").data.batch_size == 4


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(FIXTURES / "003_1.yaml", ["training.max_steps=77", "training.ema.enabled=true"], profile="cpu")
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize(
    "override,expected",
    [
        ("training.learing_rate=1e-4", "did you mean training.learning_rate?"),
        ("training.learning_rate=-1", "training.learning_rate: Input should be greater than 0"),
        ("training.max_steps=abc", "training.max_steps"),
        ("training.lr_scheduler=cosin", "valid: constant, cosine, linear"),
        ("training.warmup_steps=5000", "longer than the run"),
    ],
)
def test_bad_config_messages(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override, "training.max_steps=1000"] if "max_steps" not in override else [override])
    assert expected in str(err.value)


@pytest.mark.timeout(60)
def test_cli_typo_exits_2_without_traceback(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("training:\n  learing_rate: 1e-4\n")
    proc = subprocess.run(
        [sys.executable, "-m", "atlas.cli", "train", "--config", str(path), "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "did you mean training.learning_rate?" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unreachable_effective_batch_says_what_is_reachable():
    from atlas.planning.batch import plan_batch

    cfg = load_config(None, ["training.effective_batch_size=100", "data.batch_size=8"])
    with pytest.raises(ConfigError) as err:
        plan_batch(cfg.training, cfg.data.batch_size, world_size=2)
    message = str(err.value)
    assert "training.effective_batch_size=100" in message and "96 (accumulation 6) or 112 (accumulation 7)" in message


def test_effective_batch_derives_accumulation_and_scales_lr():
    from atlas.planning.batch import plan_batch

    cfg = load_config(None, ["training.effective_batch_size=64", "data.batch_size=8", "training.lr_scaling=linear"])
    plan = plan_batch(cfg.training, 8, world_size=8)
    assert (plan.gradient_accumulation_steps, plan.effective_batch_size) == (1, 64)
    assert plan.learning_rate == pytest.approx(8e-4)  # seed 004: 1e-4 → 8e-4 on 8 GPUs
    cfg = load_config(None, ["training.effective_batch_size=64", "data.batch_size=8", "training.lr_scaling=sqrt"])
    assert plan_batch(cfg.training, 8, world_size=8).learning_rate == pytest.approx(2.828e-4, rel=1e-3)
    cfg = load_config(None, ["training.effective_batch_size=64", "data.batch_size=8"])
    assert plan_batch(cfg.training, 8, world_size=2).gradient_accumulation_steps == 4
    assert plan_batch(cfg.training, 8, world_size=2).learning_rate == pytest.approx(1e-4)  # default: none
