"""The Wilson score interval of a success rate: used by evaluation and by reports (no simulator import)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sane at 0/n and n/n, unlike the normal one)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def difference_interval(successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of rate_a - rate_b (Newcombe's hybrid score method, built from the two Wilson
    intervals): whether one policy is really worse than another, or the gap is within evaluation noise."""
    p_a, p_b = successes_a / max(n_a, 1), successes_b / max(n_b, 1)
    low_a, high_a = wilson_interval(successes_a, n_a, z)
    low_b, high_b = wilson_interval(successes_b, n_b, z)
    delta = p_a - p_b
    return (delta - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2),
            delta + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2))
