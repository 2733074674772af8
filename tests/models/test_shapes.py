"""Planning-only shapes of published VLAs: parameter counts within 5 % of the published figures (built on the
meta device), the tools' LoRA recipes, and a clear refusal to train them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from atlas.config.errors import ConfigError
from atlas.config.loader import load_config
from atlas.models.shapes.presets import SHAPES
from atlas.planning.probe import build_model, count_params, dataset_meta

ROOT = Path(__file__).resolve().parents[2]


def _params(preset: str):
    cfg = load_config(None, [f"model.preset={preset}", "data.image_size=224", "data.num_cameras=2"])
    model = build_model(cfg, dataset_meta(cfg), False, False, device="meta")
    return model, count_params(model)


@pytest.mark.parametrize("preset", sorted(SHAPES))
def test_parameter_count_within_5_percent_of_published(preset):
    _, p = _params(preset)
    published = SHAPES[preset].published["parameters"]
    assert abs(p.total / published - 1) < 0.05, (preset, p.total, published)
    _, lora = _params(f"{preset}-lora")
    assert lora.trainable < p.trainable and abs(lora.total / published - 1) < 0.05


def test_lora_recipes_train_what_the_tools_train():
    _, oft = _params("openvla-7b-lora")  # OFT: LoRA r32 on the LLM + L1 head + proprio projector
    assert 0.2e9 < oft.trainable < 0.3e9 and oft.by_module["towers"]["trainable"] == 0
    _, pi0 = _params("pi0-lora")  # openpi freezes the LLM (and embeddings), not the image encoder
    assert pi0.by_module["towers"]["trainable"] > 0.4e9 and pi0.by_module["embed"]["trainable"] == 0
    _, smol = _params("smolvla")  # LeRobot's SmolVLA trains the expert only
    assert smol.by_module["vlm"]["trainable"] == 0 and 0.09e9 < smol.trainable < 0.11e9


def test_frozen_weights_are_bf16_as_the_tools_load_them():
    model, _ = _params("openvla-7b-lora")
    dtypes = {p.dtype for p in model.parameters() if not p.requires_grad}
    assert dtypes == {torch.bfloat16}


def test_building_for_training_is_refused_with_the_reason():
    from atlas.data.normalize import Normalizer
    from atlas.models.registry import build_policy

    cfg = load_config(None, ["model.preset=pi05"])
    with pytest.raises(ConfigError, match="planning-only.*cannot fine-tune"):
        build_policy(cfg.model, dataset_meta(cfg), Normalizer({}))


@pytest.mark.slow
def test_atlas_train_refuses_a_planning_shape(tmp_path):
    config = tmp_path / "pi05.yaml"
    config.write_text("data:\n  format: synthetic\nmodel:\n  preset: pi05\ntraining:\n  max_steps: 2\n  warmup_steps: 0\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "atlas.cli", "train", "--config", str(config), "--output-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert "model.preset=pi05 is a planning-only shape" in proc.stderr + proc.stdout
