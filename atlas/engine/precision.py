"""Mixed precision as the loop runs it, in one place: the training loop and `atlas plan --measure` must time
and train the same arithmetic (a measure without autocast once timed rdt-1b in fp32: 0.12 MFU, against 0.24
for the real bf16 loop on the same H200)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch


def autocast_factory(device: torch.device, mixed_precision: str) -> Callable[[], AbstractContextManager]:
    """A factory: each `with autocast():` gets a fresh context (`no`: none; `bf16`/`fp16`: torch.autocast)."""
    if mixed_precision == "no":
        return nullcontext
    dtype = torch.bfloat16 if mixed_precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)
