"""Find and load what `atlas eval --checkpoint` points at: a checkpoint folder, or a run folder
(its checkpoints/best, else checkpoints/latest). Normalization comes from the checkpoint, never the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from atlas.config.errors import ConfigError
from atlas.engine.checkpoint import read_pointer
from atlas.models.base import WEIGHTS_NAME as WEIGHTS


@dataclass
class LoadedCheckpoint:
    policy: object
    directory: Path
    weights: Path
    weights_kind: str  # "ema" or "raw"
    run_config: dict = field(default_factory=dict)


def resolve_checkpoint(path: str | Path) -> Path:
    """Checkpoint folder for a checkpoint, checkpoints/ or run folder path."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path.resolve()
    for base in (path / "checkpoints", path):
        for name in ("best", "latest"):
            candidate = read_pointer(base, name)
            if candidate is not None and (candidate / "config.json").is_file():
                return candidate
    if not path.exists():
        raise ConfigError(f"--checkpoint: {path} does not exist")
    raise ConfigError(
        f"--checkpoint: {path} is neither a checkpoint folder (config.json, model.safetensors) "
        "nor a run folder with checkpoints/best or checkpoints/latest"
    )


def choose_weights(directory: Path, which: str = "ema") -> tuple[Path, str]:
    """EMA weights when present (unless which='raw'), else the raw weights."""
    ema = directory / "ema" / WEIGHTS
    if which == "ema" and ema.is_file():
        return ema, "ema"
    raw = directory / WEIGHTS
    if not raw.is_file():
        raise ConfigError(f"--checkpoint: {raw} is missing")
    return raw, "raw"


def load_run_config(directory: Path) -> dict:
    """The resolved run config saved with the checkpoint (or in its run folder); {} when absent."""
    from atlas.config.loader import read_yaml

    for candidate in (directory / "config.yaml", directory.parent.parent / "config.yaml"):
        if candidate.is_file():
            return read_yaml(candidate)
    return {}


def _load_policy(directory: Path, weights: Path, device: str):
    """Policy.from_pretrained, with every way a foreign or damaged folder fails said as one error naming it."""
    import json

    from pydantic import ValidationError

    from atlas.config.errors import describe_validation_error
    from atlas.data.normalize import Normalizer
    from atlas.engine.checkpoint import CheckpointError
    from atlas.engine.compat import checkpoint_shapes, shape_differences
    from atlas.models.base import Policy
    from atlas.models.config import ModelConfig
    from atlas.models.registry import build_policy

    config_file = directory / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--checkpoint: {config_file} is not valid JSON ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) or not isinstance(config.get("meta"), dict):
        raise ConfigError(f"--checkpoint: {config_file} is not an Atlas policy config (needs 'model' and 'meta' objects)")
    try:
        from atlas.data.episodes import DatasetMeta

        shapes_only = build_policy(ModelConfig(**config["model"]), DatasetMeta.from_dict(config["meta"]), Normalizer({}),
                                   device="meta")
    except ValidationError as err:
        raise describe_validation_error(err, ModelConfig, str(config_file)) from None
    except (TypeError, KeyError, ValueError) as err:
        raise ConfigError(f"--checkpoint: {config_file} describes no policy Atlas can build ({type(err).__name__}: {err})") from None
    differences = shape_differences(checkpoint_shapes(weights), shapes_only)
    if differences:
        raise CheckpointError(f"--checkpoint: {weights} does not hold the weights of the policy {config_file} "
                              "describes:\n  " + "\n  ".join(differences))
    try:
        return Policy.from_pretrained(directory, weights=weights, device=device)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
        raise ConfigError(f"--checkpoint: {directory} cannot be loaded ({type(err).__name__}: {err})") from None


def load_checkpoint(path: str | Path, which: str = "ema", device: str = "cpu") -> LoadedCheckpoint:
    directory = resolve_checkpoint(path)
    weights, kind = choose_weights(directory, which)
    policy = _load_policy(directory, weights, device)
    policy.eval()
    return LoadedCheckpoint(policy, directory, weights, kind, load_run_config(directory))
