"""The LIBERO recipes: the values of the configs they name (openpi pi0_libero / pi05_libero, OpenVLA-OFT's
LIBERO command), each with the file and line it comes from, which `atlas doctor` prints beside a mismatch."""

from __future__ import annotations

import re

import pytest

from atlas.planning.recipes import load_recipes

LIBERO_RECIPES = ("pi0-libero", "pi05-libero", "openvla-oft-libero")


@pytest.mark.parametrize("name", LIBERO_RECIPES)
def test_every_value_cites_a_source_line(name):
    recipe = load_recipes()[name]
    for key, entry in recipe.parameters.items():
        assert re.search(r"[\w./-]+\.(py|md):\d+", entry["source"]), f"{name}.{key}: {entry['source']!r} names no file:line"


def test_pi05_libero_is_openpis_flat_lr_after_a_long_warmup():
    """openpi pi05_libero: CosineDecaySchedule(warmup 10k, peak 5e-5, decay_lr 5e-5) = warmup then flat."""
    recipe = load_recipes()["pi05-libero"]
    assert recipe.value("lr_scheduler") == "constant" and recipe.value("learning_rate") == 5e-5
    assert recipe.value("warmup_steps") == 10000 and recipe.value("ema_decay") == 0.999
    assert recipe.value("action_horizon") == 10 and "model.action_horizon=10" in recipe.atlas
    assert recipe.value("effective_batch_size") == 256 and recipe.value("max_steps") == 30000
    pi0 = load_recipes()["pi0-libero"]
    assert pi0.value("lr_scheduler") == "cosine" and pi0.value("min_lr") == 2.5e-6 and pi0.value("ema_decay") == 0.99
