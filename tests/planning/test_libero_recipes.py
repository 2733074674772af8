"""The LIBERO recipes: the values of the configs they name (openpi pi0_libero / pi05_libero, OpenVLA-OFT's
LIBERO command, LeRobot's pi0.5 and SmolVLA on LIBERO), each with the file and line it comes from, which
`atlas doctor` prints beside a mismatch."""

from __future__ import annotations

import re

import pytest

from atlas.planning.recipes import load_recipes

LIBERO_RECIPES = ("openpi-pi0-libero", "openpi-pi05-libero", "openvla-oft-libero", "lerobot-pi05-libero",
                  "lerobot-smolvla-libero")


@pytest.mark.parametrize("name", LIBERO_RECIPES)
def test_every_value_cites_a_source_line(name):
    recipe = load_recipes()[name]
    for key, entry in recipe.parameters.items():
        assert re.search(r"[\w./-]+\.(py|md|mdx|yaml):\d+", entry["source"]), f"{name}.{key}: {entry['source']!r} names no file:line"


def test_pi05_libero_is_openpis_flat_lr_after_a_long_warmup():
    """openpi pi05_libero: CosineDecaySchedule(warmup 10k, peak 5e-5, decay_lr 5e-5) = warmup then flat."""
    recipe = load_recipes()["openpi-pi05-libero"]
    assert recipe.value("learning_rate") == 5e-5 and recipe.value("warmup_steps") == 10000
    assert recipe.value("ema") == 0.999 and recipe.value("effective_batch_size") == 256
    assert recipe.value("max_steps") == 30000 and "flat" in recipe.value("lr_scheduler")
    pi0 = load_recipes()["openpi-pi0-libero"]
    assert pi0.value("lr_scheduler") == "cosine" and pi0.value("learning_rate") == 2.5e-5
    assert pi0.value("warmup_steps") == 1000 and pi0.value("effective_batch_size") == 32
