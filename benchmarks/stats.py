"""Statistics every side-by-side benchmark here reports the same way: paired per-repetition ratios
(the two sides measured in the same repetition, order alternating), their median and an interval, and
the machine's load average beside every figure (this VM is shared: wall-clock figures move with it)."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RatioSummary:
    """Median of paired ratios; `low`/`high`: the 95 % percentile-bootstrap interval of that median
    (2000 resamples of the repetitions, seeded) and `lowest`/`highest`: the range over repetitions."""

    median: float
    low: float
    high: float
    lowest: float
    highest: float
    count: int

    def text(self, digits: int = 3) -> str:
        return (f"{self.median:.{digits}f} (95% bootstrap [{self.low:.{digits}f}, {self.high:.{digits}f}], "
                f"range {self.lowest:.{digits}f}-{self.highest:.{digits}f}, n={self.count})")


def summarize_ratios(ratios: list[float], resamples: int = 2000, seed: int = 0) -> RatioSummary:
    """Median and bootstrap interval of per-repetition ratios (at least one)."""
    if not ratios:
        raise ValueError("no repetitions to summarize")
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return RatioSummary(statistics.median(ratios), medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1],
                        min(ratios), max(ratios), len(ratios))


def paired_ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Repetition i's numerator over repetition i's denominator (the two sides of one repetition)."""
    if len(numerators) != len(denominators):
        raise ValueError(f"unpaired repetitions: {len(numerators)} vs {len(denominators)}")
    return [a / b for a, b in zip(numerators, denominators)]


def alternating(rep: int, first: str, second: str) -> tuple[str, str]:
    """The order of the two sides in repetition `rep`: first/second on even repetitions, swapped on odd ones,
    so a drift in machine load hits both sides equally over the run."""
    return (first, second) if rep % 2 == 0 else (second, first)


def load_average() -> str:
    """The 1/5/15-minute load average (Linux), printed beside figures from this shared machine."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"
