"""Collate samples into a batch with numpy: `np.stack` then `torch.from_numpy`.

Same output as `torch.utils.data.default_collate` for our samples (arrays → tensors of the same dtype,
ints → int64, strings → lists), but `torch.stack` of uint8 image tensors with several intra-op threads
can be orders of magnitude slower on a busy CPU in the main process, where DataLoader does not limit torch
to one thread (figures in benchmarks/RESULTS.md, "Data loading").
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch.utils.data import default_collate


def collate_samples(samples: list[dict]) -> dict:
    """List of sample dicts → batch dict (tensors stacked along a new first dimension)."""
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, np.ndarray):
            out[key] = torch.from_numpy(np.stack(values))
        elif isinstance(first, str):
            out[key] = list(values)
        elif isinstance(first, (bool, np.bool_)):
            out[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, numbers.Integral):
            out[key] = torch.tensor(values, dtype=torch.int64)
        else:
            out[key] = default_collate(values)
    return out
