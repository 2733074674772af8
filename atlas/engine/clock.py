"""The step clock: which optimizer step the loop is in.

The loop advances it at the start of every step; the hang watchdog, the non-finite watch and the test
fault injectors read it. One small object instead of a counter living inside any one of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StepClock:
    step: int = 0  # the optimizer step in progress (1-based; 0 before the first)

    def advance(self, step: int) -> None:
        self.step = step
