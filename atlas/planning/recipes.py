"""Recipes: known-good setups as YAML (atlas/configs/recipes/), each value with where it comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas.config.errors import ConfigError
from atlas.config.loader import configs_dir
from atlas.config.yaml_words import load_yaml


@dataclass
class Recipe:
    name: str
    description: str
    match: dict[str, list[str]]
    atlas: list[str]  # KEY=VALUE overrides giving the model and input shapes the planner measures
    parameters: dict[str, dict[str, Any]]
    # How the recipe's own training code calls SDPA: "default" (no kernel pinned) or None (Atlas's model decides).
    attention_dispatch: str | None = None

    def value(self, key: str) -> Any:
        return self.parameters.get(key, {}).get("value")

    def source(self, key: str) -> str:
        return self.parameters.get(key, {}).get("source", "")


def recipes_dir() -> Path:
    return configs_dir() / "recipes"


def load_recipes() -> dict[str, Recipe]:
    out = {}
    for path in sorted(recipes_dir().glob("*.yaml")):
        data = load_yaml(path.read_text())
        out[data["name"]] = Recipe(data["name"], data.get("description", ""), data.get("match", {}),
                                   list(data.get("atlas", [])), data.get("parameters", {}),
                                   (data.get("attention_dispatch") or {}).get("value"))
    return out


def get_recipe(name: str) -> Recipe:
    recipes = load_recipes()
    if name not in recipes:
        raise ConfigError(f"recipe {name!r} is unknown; valid: {', '.join(recipes)}")
    return recipes[name]


def infer_recipe(preset: str | None, flags: set[str], text: str) -> tuple[Recipe, str]:
    """The best-matching recipe and why: preset first, then script flags, then words in the file."""
    recipes = load_recipes()
    for recipe in recipes.values():
        if preset and preset in recipe.match.get("presets", []):
            return recipe, f"model.preset={preset}"
    scored = []
    lowered = text.lower()
    for recipe in recipes.values():
        hits = [f"--{f}" for f in recipe.match.get("flags", []) if f in flags]
        words = [w for w in recipe.match.get("words", []) if w.lower() in lowered]
        scored.append((2 * len(hits) + len(words), recipe, hits + words))
    score, recipe, evidence = max(scored, key=lambda item: item[0])
    if score == 0:
        recipe = recipes["atlas-metaworld"]
        return recipe, "nothing matched; using the Atlas default recipe"
    return recipe, "matched " + ", ".join(evidence)
