"""FSDP2 (`torch.distributed.fsdp.fully_shard`): shard the policy, and gather its full state back.

Each fusion transformer block is one FSDP unit, the vision backbone another when it trains, and the
root holds the rest (adaptors, head, language encoder, norms). Parameters become DTensors sharded on
dim 0; anything built from them (optimizer state, the EMA shadow) is sharded alike. Files on disk always
hold the FULL tensors, so a checkpoint loads in one process and resumes on any number of processes:
`full_tensors` gathers (a collective: every rank calls it, in the same order), `shard_like` cuts a full
tensor back into this rank's shard without communication.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _dtensor():
    from torch.distributed.tensor import DTensor

    return DTensor


def shard_policy(policy: nn.Module, mixed_precision: str = "no") -> nn.Module:
    """Shard in place (fully_shard changes the module's class, not its identity) and return it.

    With bf16/fp16 the blocks and the backbone (nearly all the weights) are all-gathered and run in that
    dtype, their inputs cast on entry, gradients reduced in fp32. The root stays fp32: the batch it
    receives (targets, masks) is not cast, so the loss is computed as under DDP with autocast."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    low = MixedPrecisionPolicy()
    if mixed_precision in PRECISION:
        low = MixedPrecisionPolicy(param_dtype=PRECISION[mixed_precision], reduce_dtype=torch.float32)
    fusion = getattr(policy, "fusion", None)
    for block in getattr(fusion, "blocks", []):
        fully_shard(block, mp_policy=low)
    vision = getattr(policy, "vision", None)
    if vision is not None and any(p.requires_grad for p in vision.parameters()):
        fully_shard(vision, mp_policy=low)
    fully_shard(policy)
    return policy


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """FSDP's `no_sync`: without sync, gradients accumulate unsharded locally and the reduce-scatter
    waits for the micro-batch that re-enables it (one per optimizer step)."""
    if enabled:
        yield
        return
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def any_dtensor(tensors) -> bool:
    """Whether any of `tensors` is a DTensor (an FSDP2 shard)."""
    dtensor = _dtensor()
    return any(isinstance(t, dtensor) for t in tensors)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor: a DTensor gathered (collective), anything else as is."""
    return t.full_tensor() if isinstance(t, _dtensor()) else t


def full_tensors(tensors: dict[str, torch.Tensor], keep: bool) -> dict[str, torch.Tensor]:
    """Gather every DTensor one at a time (peak memory: one full tensor); the full tensors are kept, on
    CPU, where `keep` (rank 0, which writes) and dropped elsewhere. Every rank must call this."""
    out = {}
    for name, value in tensors.items():
        full = full_tensor(value.detach())
        if keep:
            out[name] = full.cpu()
    return out


def shard_like(full: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Full tensors cut to the layout of `like` (DTensor shards; plain tensors pass through). No
    communication: every rank read the same file and keeps its own shard."""
    from torch.distributed.tensor import distribute_tensor

    DTensor = _dtensor()
    out = {}
    for name, value in full.items():
        target = like.get(name)
        if isinstance(target, DTensor):
            value = distribute_tensor(value.to(target.device, target.dtype), target.device_mesh, target.placements,
                                      src_data_rank=None)
        out[name] = value
    return out


def numel(tensors: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(elements held by this rank, elements of the full tensors)."""
    DTensor = _dtensor()
    local = sum((t.to_local() if isinstance(t, DTensor) else t).numel() for t in tensors.values())
    return local, sum(t.numel() for t in tensors.values())
