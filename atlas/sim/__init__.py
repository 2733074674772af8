"""Simulation: Meta-World demonstration collection and closed-loop evaluation.

Heavy imports (metaworld, mujoco, torch) happen inside the functions, so the config schema can import
`atlas.sim.config` cheaply.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must be set before mujoco is imported


def collect(*args, **kwargs) -> dict:
    """See `atlas.sim.collection.collect`."""
    from atlas.sim.collection import collect as _collect

    return _collect(*args, **kwargs)


def evaluate_policy(*args, **kwargs) -> dict:
    """See `atlas.sim.evaluate.evaluate_policy`."""
    from atlas.sim.evaluate import evaluate_policy as _evaluate_policy

    return _evaluate_policy(*args, **kwargs)
