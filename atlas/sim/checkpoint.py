"""Find and load what `atlas eval --checkpoint` points at: a checkpoint folder, or a run folder
(its checkpoints/best, else checkpoints/latest). Normalization comes from the checkpoint, never the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from atlas.config.errors import ConfigError
from atlas.config.yaml_words import load_yaml
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

    for candidate in (directory / "config.yaml", directory.parent.parent / "config.yaml"):
        if candidate.is_file():
            return load_yaml(candidate.read_text()) or {}
    return {}


def load_checkpoint(path: str | Path, which: str = "ema", device: str = "cpu") -> LoadedCheckpoint:
    from atlas.models.base import Policy

    directory = resolve_checkpoint(path)
    weights, kind = choose_weights(directory, which)
    policy = Policy.from_pretrained(directory, weights=weights, device=device)
    policy.eval()
    return LoadedCheckpoint(policy, directory, weights, kind, load_run_config(directory))
