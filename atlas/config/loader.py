"""Load a config in layers: schema defaults < profile < the YAML file < KEY=VALUE overrides."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from atlas.config.errors import ConfigError, describe_validation_error
from atlas.config.schema import DUPLICATED_SETTINGS, AtlasConfig
from atlas.config.yaml_loader import load_yaml_text
from atlas.textfile import read_text_file

PROFILES = ("cpu", "gpu_24gb", "gpu_48gb", "gpu_80gb")


def configs_dir() -> Path:
    """Folder of the YAML configs shipped inside the package."""
    return Path(str(resources.files("atlas") / "configs"))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`training.max_steps=50` → nested dict; values are parsed as YAML scalars (50 → int, 1e-4 → float,
    '"2.0"' → the string 2.0)."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not KEY=VALUE (e.g. training.max_steps=50)")
        key, raw = pair.split("=", 1)
        try:
            value = load_yaml_text(raw) if raw != "" else None
        except ConfigError as err:
            raise ConfigError(f"override {key.strip()}={raw!r}: {err}") from None
        except yaml.YAMLError as err:
            problem = str(err).splitlines()[0]
            raise ConfigError(f"override {key.strip()}={raw!r}: the value is not valid YAML ({problem})") from None
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {pair!r} sets a key below a plain value")
        node[parts[-1]] = value
    return nested


def canonicalize(layer: dict, moved: dict[str, str] | None = None) -> dict:
    """Move the seeds' duplicate keys to their canonical place within one layer, so a later layer's
    `memory_optimization.num_workers` beats an earlier layer's `data_loading.num_workers`; `moved` collects
    {canonical key: the seed's key it was written as}, so an error names the key the user wrote."""
    out = copy.deepcopy(layer)
    for seed_key, canonical_key in DUPLICATED_SETTINGS:
        seed_section, seed_name = seed_key.split(".")
        section, name = canonical_key.split(".")
        if not isinstance(out.get(seed_section), dict) or seed_name not in out[seed_section]:
            continue
        value = out[seed_section].pop(seed_name)
        if value is None:
            continue
        target = out.setdefault(section, {})
        if not isinstance(target, dict):
            continue
        if name in target and target[name] != value:
            raise ConfigError(
                f"{seed_key}={value} disagrees with {canonical_key}={target[name]}; "
                f"set one of them (they are the same setting)"
            )
        target[name] = value
        if moved is not None:
            moved[canonical_key] = seed_key
    return out


def deep_merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    text = read_text_file(path, "config file")
    try:
        data = load_yaml_text(text) or {}
    except ConfigError as err:
        raise ConfigError(f"config file {path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def config_layer(data: dict, path: str | Path) -> dict:
    """A recipe (atlas/configs/recipes/*.yaml: `name`, `match`, `parameters`, ...) trains from its `config:`
    block; any other file is the config itself."""
    if "parameters" in data and "match" in data:
        if not isinstance(data.get("config"), dict):
            raise ConfigError(f"{path} is a recipe without a `config:` block: it describes a setup for "
                              f"`atlas doctor` but gives nothing to train")
        return data["config"]
    return data


def detect_profile() -> str:
    """`profile: auto`: pick by the memory of the first visible GPU (CPU profile without one)."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    if gib >= 70:
        return "gpu_80gb"
    if gib >= 40:
        return "gpu_48gb"
    return "gpu_24gb"


def load_profile(name: str) -> dict:
    if name == "auto":
        name = detect_profile()
    if name not in PROFILES:
        raise ConfigError(f"profile {name!r} is unknown; valid: {', '.join(PROFILES)}, auto")
    data = canonicalize(read_yaml(configs_dir() / "profiles" / f"{name}.yaml"))
    data["profile"] = name
    return data


def build_config(layers: dict, source: str = "", written_as: dict[str, str] | None = None) -> AtlasConfig:
    """Validate merged layers; errors name fields as `written_as` says they were written (see canonicalize)."""
    try:
        return AtlasConfig.model_validate(layers)
    except ValidationError as err:
        raise describe_validation_error(err, AtlasConfig, source, written_as) from None


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, profile: str | None = None
) -> AtlasConfig:
    """Resolve a config; `profile` (from --profile) wins over the file's own `profile:` key."""
    moved: dict[str, str] = {}
    file_layer = canonicalize(config_layer(read_yaml(path), path), moved) if path else {}
    raw_overrides = parse_overrides(overrides or [])
    for canonical in list(moved):  # an override of the canonical key replaces the file's seed-place value
        section, name = canonical.split(".")
        if isinstance(raw_overrides.get(section), dict) and name in raw_overrides[section]:
            del moved[canonical]
    override_layer = canonicalize(raw_overrides, moved)
    profile_name = override_layer.get("profile") or profile or file_layer.get("profile")
    layers: dict = {}
    if profile_name:
        layers = load_profile(str(profile_name))
    layers = deep_merge(layers, {k: v for k, v in file_layer.items() if k != "profile"})
    layers = deep_merge(layers, {k: v for k, v in override_layer.items() if k != "profile"})
    if profile_name:
        layers["profile"] = layers.get("profile", profile_name)
    return build_config(layers, source=str(path) if path else "(overrides)", written_as=moved)


def dump_config(cfg: AtlasConfig, path: str | Path) -> None:
    """Write the resolved config; `load_config(path)` gives back an equal object."""
    data = cfg.model_dump(mode="json")  # every key is explicit, so re-overlaying the profile changes nothing
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
