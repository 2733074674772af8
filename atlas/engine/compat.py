"""Is a checkpoint the same model as the configured policy? Checked before loading its weights.

Resuming continues one run: the weights, optimizer moments and step all assume the same architecture.
Resuming a `model.preset=mlp` checkpoint into `act`, or into another width or state size, would fail
deep inside `load_state_dict` with a wall of size mismatches; this says which tensors differ, and that
`model.pretrained` is the way to start a different model from existing weights.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from atlas.config.errors import ConfigError
from atlas.engine.checkpoint import CheckpointError


def checkpoint_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of a safetensors file, read from its header (no tensor is loaded)."""
    from atlas.engine.weight_files import WeightFileError, weight_shapes

    try:
        return weight_shapes(weights)
    except WeightFileError as err:
        raise CheckpointError(f"{weights}: {err}") from None


def shape_differences(saved: dict[str, tuple[int, ...]], policy: nn.Module, limit: int = 6) -> list[str]:
    """What differs between a checkpoint's tensors and the policy's state dict, in words (at most `limit`
    lines, the last one counting the rest)."""
    mine = {name: tuple(t.shape) for name, t in policy.state_dict().items()}
    lines = [f"{name}: {list(saved[name])} in the checkpoint, {list(shape)} configured"
             for name, shape in mine.items() if name in saved and saved[name] != shape]
    missing = [name for name in mine if name not in saved]
    extra = [name for name in saved if name not in mine]
    if missing:
        lines.append(f"{len(missing)} tensor(s) of the configured policy not in the checkpoint (e.g. {missing[0]})")
    if extra:
        lines.append(f"{len(extra)} tensor(s) in the checkpoint the configured policy lacks (e.g. {extra[0]})")
    if len(lines) > limit:
        lines = lines[: limit - 1] + [f"... and {len(lines) - limit + 1} more"]
    return lines


def check_resume_compatible(checkpoint_dir: str | Path, policy: nn.Module) -> None:
    """ConfigError naming the differing tensors when `checkpoint_dir/model.safetensors` is another model."""
    checkpoint_dir = Path(checkpoint_dir)
    differences = shape_differences(checkpoint_shapes(checkpoint_dir / "model.safetensors"), policy)
    if differences:
        raise ConfigError(
            f"--resume {checkpoint_dir}: the checkpoint is a different model from the configured one:\n  "
            + "\n  ".join(differences)
            + "\nResume continues the same model (same model.preset, widths, state/action sizes). To start a "
            f"new model from these weights, train a fresh run with model.pretrained={checkpoint_dir}"
        )
