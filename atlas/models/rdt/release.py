"""RDT's release folder, as `robotics-diffusion-transformer/rdt-1b` ships it: `config.json` (the
keyword arguments of RDT's `RDTRunner`, as its hub mixin writes them) and the weights, either
`model.safetensors` or `pytorch_model.bin` (`torch.save` of `RDTRunner.state_dict()`, read with
`torch.load(weights_only=True)`: a pickle that would run code is refused, never executed).

The Atlas RDT policy keeps RDT's module names (`model.*`, `lang_adaptor.*`, `img_adaptor.*`,
`state_adaptor.*`), so a release's tensors are the policy's tensors under the same names. The frozen
encoders (T5, SigLIP) are not part of a release: they come from `model.language.path` /
`model.vision.path`, so a loader reports the policy's `vision.*` / `language.*` tensors as not covered
by the release (`RELEASE_MODULES` names what is).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from atlas.config.errors import ConfigError
from atlas.engine.checkpoint import CheckpointError
from atlas.models.rdt.runner import RELEASE_MODULES
from atlas.models.rdt.shape import RDTShape

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
PICKLE_NAME = "pytorch_model.bin"
RUNNER_KEYS = ("action_dim", "pred_horizon", "config")

__all__ = ["RELEASE_MODULES", "is_rdt_release", "load_release_state_dict", "read_release_config", "weights_file"]


def _config_data(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_rdt_release(folder: str | Path) -> bool:
    """A folder whose config.json holds RDTRunner's arguments and that has RDT's weights file (an Atlas
    policy folder has config.json + model.safetensors too, but its config is {model, meta})."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    data = _config_data(folder)
    has_weights = (folder / SAFETENSORS_NAME).is_file() or (folder / PICKLE_NAME).is_file()
    return data is not None and all(k in data for k in RUNNER_KEYS) and has_weights


def read_release_config(folder: str | Path) -> RDTShape:
    """The network's shape from `config.json`; a missing, unreadable or foreign file is one ConfigError naming it."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{path}: missing; an RDT release folder has config.json (RDTRunner's arguments)")
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not all(k in data for k in RUNNER_KEYS):
        raise ConfigError(f"{path}: not an RDT release config (expected RDTRunner's arguments "
                          f"{', '.join(RUNNER_KEYS)}, ...)")
    try:
        return RDTShape.from_runner_kwargs(data)
    except KeyError as err:
        raise ConfigError(f"{path}: RDT config key {err.args[0]!r} is missing") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: {err}") from None


def weights_file(folder: str | Path) -> Path:
    """model.safetensors if present (as RDT's own loader prefers it), else pytorch_model.bin."""
    folder = Path(folder)
    for name in (SAFETENSORS_NAME, PICKLE_NAME):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder}: no RDT weights ({SAFETENSORS_NAME} or {PICKLE_NAME})")


def load_release_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """The release's tensors under the Atlas RDT policy's names (RDT's own: `model.*` and the adaptors)."""
    path = weights_file(folder)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is a damaged or unsafe file, named
        raise CheckpointError(f"{path}: cannot be read as RDT weights ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    foreign = [k for k in state if str(k).split(".")[0] not in RELEASE_MODULES]
    if not_tensors:
        raise CheckpointError(f"{path}: entries that are not tensors: {', '.join(map(str, not_tensors[:5]))}")
    if foreign:
        raise CheckpointError(f"{path}: tensors outside RDT's modules ({', '.join(RELEASE_MODULES)}): "
                              f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}")
    return dict(state)
