"""Per-episode simulator seeds: collection seeds are even, evaluation seeds odd, so the two never meet.

A seed depends only on (purpose, base seed, task, episode index), never on worker count or order, which
is what makes sharded collection and evaluation reproducible.
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

Purpose = Literal["collect", "eval"]
_PARITY = {"collect": 0, "eval": 1}


def episode_seed(purpose: Purpose, base_seed: int, task: str, index: int) -> int:
    """A 62-bit seed, even for collection and odd for evaluation."""
    words = [int(base_seed) & 0xFFFFFFFF, zlib.crc32(task.encode()), int(index)]
    value = int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]) >> 3
    return 2 * value + _PARITY[purpose]
