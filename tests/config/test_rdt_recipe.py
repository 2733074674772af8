"""The rdt-1b-finetune recipe: a doctor recipe whose `config:` block trains with seed 000's numbers."""

from __future__ import annotations

import pytest

from atlas.config import load_config
from atlas.config.errors import ConfigError
from atlas.engine.schedules import learning_rate_at
from atlas.planning.recipes import get_recipe, recipes_dir

RECIPE = recipes_dir() / "rdt-1b-finetune.yaml"


def test_recipe_loads_as_a_training_config_with_seed_000s_numbers():
    cfg = load_config(RECIPE)
    t, d, m = cfg.training, cfg.data, cfg.model
    assert t.effective_batch_size == 256 and d.batch_size * 8 * 8 == 256  # option 2: 4 x 8 accumulation x 8 GPUs
    assert (t.learning_rate, t.warmup_steps, t.mixed_precision) == (1e-4, 5000, "bf16")
    assert d.state_noise_snr == 40 and d.image_aug.enabled and t.checkpoints_total_limit == 30
    assert m.preset == "rdt-1b" and m.pretrained == "checkpoints/rdt-1b"
    assert (m.vision.name, m.language.name) == ("hf", "hf")
    assert m.head.num_inference_steps == 5 and m.head.prediction == "sample" and m.unified_dim == 128


def test_the_schedule_honours_the_warmup():
    t = load_config(RECIPE).training
    lr = [learning_rate_at(s, t.learning_rate, t.lr_scheduler, t.warmup_steps, t.max_steps) for s in (1, 2500, 5000, 60000)]
    assert lr == pytest.approx([1e-4 / 5000, 5e-5, 1e-4, 1e-4])


def test_recipe_parameters_agree_with_its_config():
    recipe, cfg = get_recipe("rdt-1b-finetune"), load_config(RECIPE)
    assert recipe.value("effective_batch_size") == cfg.training.effective_batch_size
    assert recipe.value("learning_rate") == cfg.training.learning_rate
    assert recipe.value("warmup_steps") == cfg.training.warmup_steps
    assert recipe.value("mixed_precision") == cfg.training.mixed_precision
    assert recipe.value("state_noise_snr") == cfg.data.state_noise_snr
    assert recipe.value("image_aug") is cfg.data.image_aug.enabled


def test_a_recipe_without_config_is_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nmatch: {}\nparameters: {}\n")
    with pytest.raises(ConfigError, match="without a `config:` block"):
        load_config(path)
