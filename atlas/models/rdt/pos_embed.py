"""RDT's fixed sin-cos position embeddings, computed as RDT computes them (models/rdt/blocks.py).

They initialise RDT's three (trainable) position tables: the input sequence [timestep, control
frequency, state, actions] with a modality code in the first half of the channels, and the language
and image conditions from `lang_pos_embed_config` / `img_pos_embed_config`, lists of
`(modality, length)` pairs where an image length may be a grid `(history, cameras, patches)` and a
negative length (or grid size) means "no position inside this modality" (the patches already carry
the vision encoder's own). Float64 arithmetic as RDT's numpy code, returned as float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

ModalityLengths = Sequence[tuple[str, "int | Sequence[int]"]]


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[M] positions → [M, dim]: sin in the first half, cos in the second (MAE's layout)."""
    if dim % 2:
        raise ValueError(f"sin-cos position embedding needs an even size, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.reshape(-1).to(torch.float64)[:, None] * omega[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_nd(dim: int, grid: Sequence[int]) -> torch.Tensor:
    """grid (g0, ..., gk) → [g0, ..., gk, dim]: the channels split evenly over the axes longer than 1."""
    out = torch.zeros(*grid, dim, dtype=torch.float64)
    axes = [i for i, size in enumerate(grid) if size > 1]
    if not axes:
        return out
    per_axis = dim // len(axes)
    per_axis -= per_axis % 2
    for slot, axis in enumerate(axes):
        shape = [1] * len(grid) + [per_axis]
        shape[axis] = -1
        emb = sincos_1d(per_axis, torch.arange(grid[axis])).reshape(shape)
        out[..., slot * per_axis : (slot + 1) * per_axis] += emb
    return out


def multimodal(dim: int, lengths: ModalityLengths, embed_modality: bool = True) -> torch.Tensor:
    """[sum of lengths, dim]: RDT's `get_multimodal_cond_pos_embed`."""
    pos_dim = dim // 2 if embed_modality else dim
    modality = torch.zeros(len(lengths), dim, dtype=torch.float64)
    if embed_modality:
        modality[:, : dim // 2] = sincos_1d(dim // 2, torch.arange(len(lengths)))
    parts = []
    for index, (name, length) in enumerate(lengths):
        if name == "image" and isinstance(length, (list, tuple)):
            full = tuple(abs(int(x)) for x in length)
            embedded = tuple(int(x) if int(x) > 0 else 1 for x in length)
            part = torch.zeros(*full, dim, dtype=torch.float64)
            part[..., dim - pos_dim :] += sincos_nd(pos_dim, embedded)
            part = part.reshape(-1, dim)
        else:
            length = int(length)
            part = torch.zeros(abs(length), dim, dtype=torch.float64)
            part[:, dim - pos_dim :] += sincos_1d(pos_dim, torch.arange(length if length > 0 else 1))
        parts.append(part + modality[index])
    return torch.cat(parts, dim=0).float()


def condition_table(dim: int, length: int, config: ModalityLengths | None) -> torch.Tensor:
    """[length, dim] for a condition: plain 1D sin-cos without a config, else `multimodal` without modality codes."""
    if config is None:
        return sincos_1d(dim, torch.arange(length)).float()
    table = multimodal(dim, config, embed_modality=False)
    if table.shape[0] != length:
        raise ValueError(f"position config {list(config)} describes {table.shape[0]} tokens, the model has {length}")
    return table


def input_table(dim: int, horizon: int) -> torch.Tensor:
    """[horizon + 3, dim] for RDT's input sequence: timestep, control frequency, state, actions."""
    return multimodal(dim, [("timestep", 1), ("ctrl_freq", 1), ("state", 1), ("action", horizon)])
