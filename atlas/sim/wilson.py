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


def paired_difference_interval(both: int, only_a: int, only_b: int, neither: int, z: float = Z95) -> tuple[float, float]:
    """95% interval of rate_a - rate_b when the two policies ran the SAME episodes (pairs matched by task and
    episode seed): Newcombe's (1998) method 10, the paired square-and-add of the two Wilson intervals with
    the correlation of the pairs (phi, corrected towards 0 by n/2 as Newcombe recommends). Pairing removes the
    shared difficulty of an episode, so the interval is narrower than `difference_interval` when both
    policies fail and succeed on the same episodes.

    both / only_a / only_b / neither: pairs where both succeeded, only a, only b, neither."""
    n = both + only_a + only_b + neither
    if n <= 0:
        return -1.0, 1.0
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    low_a, high_a = wilson_interval(both + only_a, n, z)
    low_b, high_b = wilson_interval(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = corrected / math.sqrt(margins) if margins > 0 else 0.0
    d_a, e_a, d_b, e_b = p_a - low_a, high_a - p_a, p_b - low_b, high_b - p_b
    delta = p_a - p_b
    low = delta - math.sqrt(max(0.0, d_a * d_a - 2 * phi * d_a * e_b + e_b * e_b))
    high = delta + math.sqrt(max(0.0, e_a * e_a - 2 * phi * e_a * d_b + d_b * d_b))
    return max(-1.0, low), min(1.0, high)
