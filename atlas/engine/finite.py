"""Checks that keep non-finite numbers out of a run's results.

The loop's step guard looks at the loss and the gradients; an update can still turn finite gradients into
NaN weights (a learning rate or epsilon that overflows, an fp16 moment). `nonfinite_parameters` looks at
the weights themselves after the update, in one host sync; `improves` is the rule for `best`: a NaN or
inf metric is never an improvement (NaN < x is False, but `best_metric is None` would let the first NaN in).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


@torch.no_grad()
def nonfinite_parameters(named_parameters: Iterable[tuple[str, torch.Tensor]], limit: int = 5) -> list[str]:
    """Names of parameters holding NaN or inf (at most `limit`), with one device-to-host copy in all.

    One reduction per tensor (a sum: NaN or inf anywhere makes it non-finite; it overflows only for weights
    past ~1e38 in total, which are broken anyway), about a third of the memory traffic of an AdamW step.

    Pass `policy.named_parameters()` after `optimizer.step()`; sharded tensors (FSDP DTensors) are checked
    on their local shard, so call it on every rank and reduce the count if ranks must agree."""
    names, flags = [], []
    for name, param in named_parameters:
        local = param.to_local() if hasattr(param, "to_local") else param
        if local.numel() == 0 or not (local.is_floating_point() or local.is_complex()):
            continue
        names.append(name)
        flags.append(local.detach().sum(dtype=torch.float32))  # NaN/inf anywhere make the sum NaN/inf: one pass
    if not flags:
        return []
    finite = torch.isfinite(torch.stack([f.to(flags[0].device) for f in flags])).cpu().tolist()
    return [name for name, ok in zip(names, finite) if not ok][:limit]


def improves(score: float | None, best: float | None) -> bool:
    """Whether `score` (lower is better) should become the new best: finite, and below the best so far."""
    if score is None or not math.isfinite(score):
        return False
    return best is None or not math.isfinite(best) or score < best
