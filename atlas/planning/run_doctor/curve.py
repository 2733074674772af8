"""Statistics of a logged loss curve (one value per log window) that the loss rules share.

Window-to-window noise is estimated from successive differences (robust to the trend: a falling curve is
not mistaken for a noisy one); levels are compared on a 3-window moving average so that one noisy window
is not read as a move.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

SMOOTH = 3  # windows in the moving average the rise and stall are read on


@dataclass(frozen=True)
class Curve:
    steps: list[int]
    values: list[float]

    @property
    def noise(self) -> float:
        """Standard deviation of one window's value around the trend: MAD of successive differences
        x 1.4826 (normal-consistent) / sqrt(2) (a difference carries two windows' noise)."""
        diffs = [b - a for a, b in zip(self.values, self.values[1:])]
        if len(diffs) < 2:
            return 0.0
        centre = statistics.median(diffs)
        return 1.4826 * statistics.median(abs(d - centre) for d in diffs) / 2 ** 0.5

    @property
    def smoothed(self) -> list[float]:
        """Trailing moving average over SMOOTH windows (shorter at the start)."""
        out = []
        for i in range(len(self.values)):
            window = self.values[max(0, i - SMOOTH + 1): i + 1]
            out.append(sum(window) / len(window))
        return out

    def largest_rise(self) -> tuple[float, int, int]:
        """(rise, step of the low, step of the high): how far the smoothed loss climbed above its lowest
        earlier value, at the worst point of the run."""
        smooth = self.smoothed
        best, low_at, rise, rise_at = smooth[0], 0, 0.0, (0, 0)
        for i, value in enumerate(smooth):
            if value < best:
                best, low_at = value, i
            elif value - best > rise:
                rise, rise_at = value - best, (low_at, i)
        return rise, self.steps[rise_at[0]], self.steps[rise_at[1]]

    def tail_drop(self) -> tuple[float, float]:
        """(drop, its noise) over the last half of the run: the mean of the tail's first third minus the mean
        of its last third, and the standard deviation of that difference for a flat curve."""
        tail = self.values[len(self.values) // 2:]
        third = max(1, len(tail) // 3)
        drop = sum(tail[:third]) / third - sum(tail[-third:]) / third
        return drop, self.noise * (2.0 / third) ** 0.5

    def stall_step(self, band: float) -> int:
        """The first step by which the smoothed loss had come within `band` of the lowest it ever reached."""
        smooth = self.smoothed
        lowest = min(smooth)
        return next(step for step, value in zip(self.steps, smooth) if value <= lowest + band)
