"""Reading and writing a policy's safetensors weight files, including files that hold only part of it.

Two relations say, in a file's safetensors header (`atlas.rest`), where the tensors it does not hold are:
- `"raw"`: a checkpoint's `ema/model.safetensors` holds the tensors the EMA averages (the trainable
  parameters) and the buffers; the rest are the raw weights' in `../model.safetensors`.
- `"frozen"`: a checkpoint's `model.safetensors` holds everything the run trains (and the buffers); the
  frozen parameters (a MiniLM or VGGT backbone, a LoRA fine-tune's base) are in `frozen.safetensors` of
  the same folder, which the run writes once and hard-links into each later checkpoint
  (atlas/engine/frozen_weights.py).
Frozen weights never change, so writing them again in every file and every checkpoint would only cost
time and disk. Every reader in Atlas goes through `read_weights` / `weight_shapes`, which follow the
relations (EMA -> raw -> frozen), so a partial file reads back as the whole policy. A tool that opens one
file by itself gets its own tensors only and can see why in the header.

Only these two fixed relations are understood (no free paths in a header: a hostile file cannot point a
reader anywhere else)."""

from __future__ import annotations

from pathlib import Path

import torch

REST_KEY = "atlas.rest"  # safetensors metadata key: where the tensors this file does not hold are
REST_IN_RAW = "raw"      # ... in the raw weights of the same checkpoint: ../model.safetensors
REST_IN_FROZEN = "frozen"  # ... in the frozen weights beside it: ./frozen.safetensors
FROZEN_NAME = "frozen.safetensors"


class WeightFileError(ValueError):
    """A weight file that cannot be read (the caller names it in its own error type)."""


def _rest_file(path: Path, metadata: dict[str, str] | None) -> Path | None:
    relation = (metadata or {}).get(REST_KEY)
    if relation is None:
        return None
    if relation == REST_IN_RAW:
        rest = path.parent.parent / path.name
        if not rest.is_file():
            raise WeightFileError(f"holds only the averaged tensors, and the raw weights {rest} it needs are missing")
        return rest
    if relation == REST_IN_FROZEN:
        rest = path.parent / FROZEN_NAME
        if not rest.is_file():
            raise WeightFileError(f"holds only the trained tensors, and the frozen weights {rest} it needs are "
                                  "missing (copy the whole checkpoint folder, not one file)")
        return rest
    raise WeightFileError(f"header says the missing tensors are in {relation!r}; only {REST_IN_RAW!r} and "
                          f"{REST_IN_FROZEN!r} are understood")


def _open(path: Path):
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework="pt")
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError ...: the file is unusable
        raise WeightFileError(f"not a readable safetensors file ({type(err).__name__}: {err})") from None


def weight_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of a weight file (its rest included), read from the headers only."""
    path = Path(path)
    with _open(path) as f:
        shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
        rest = _rest_file(path, f.metadata())
    if rest is not None:
        shapes = {**{k: v for k, v in weight_shapes(rest).items() if k not in shapes}, **shapes}
    return shapes


def read_weights(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor of a weight file, the ones it leaves to the raw file included."""
    from safetensors.torch import load_file

    path = Path(path)
    with _open(path) as f:
        rest = _rest_file(path, f.metadata())
    try:
        state = load_file(str(path), device=device)
    except Exception as err:  # noqa: BLE001 - a header that opens but tensors that do not (truncated)
        raise WeightFileError(f"not a readable safetensors file ({type(err).__name__}: {err})") from None
    if rest is not None:
        state = {**{k: v for k, v in read_weights(rest, device).items() if k not in state}, **state}
    return state


def write_weights(tensors: dict[str, torch.Tensor], path: str | Path, rest: str | None = None) -> None:
    """Write `tensors` (contiguous, on the CPU); `rest`: where the policy's other tensors are (REST_IN_RAW for an
    EMA file beside its raw weights, REST_IN_FROZEN for raw weights beside the run's frozen file), else None."""
    from safetensors.torch import save_file

    if rest not in (None, REST_IN_RAW, REST_IN_FROZEN):
        raise ValueError(f"rest={rest!r}: expected None, {REST_IN_RAW!r} or {REST_IN_FROZEN!r}")
    metadata = {REST_KEY: rest} if rest else None
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=metadata)
