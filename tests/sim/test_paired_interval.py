"""The paired Newcombe interval (atlas.sim.wilson.paired_difference_interval) that policy_baseline.py's
verdict rests on: the published example, and agreement with the Wald interval where that is exact enough."""

from __future__ import annotations

import math

import pytest

from atlas.sim.wilson import difference_interval, paired_difference_interval


def test_matches_newcombe_1998_paired_example():
    # Newcombe, Statistics in Medicine 17:2635 (1998), Table II example (a): 36 / 12 / 2 / 0 pairs, method 10
    assert paired_difference_interval(36, 12, 2, 0) == pytest.approx((0.0569, 0.3404), abs=1e-4)


def test_agrees_with_wald_for_large_counts():
    both, only_a, only_b, neither = 1000, 300, 200, 500
    n = both + only_a + only_b + neither
    delta = (only_a - only_b) / n
    se = math.sqrt((only_a + only_b) / n**2 - (only_a - only_b) ** 2 / n**3)  # the paired Wald variance
    low, high = paired_difference_interval(both, only_a, only_b, neither)
    assert low == pytest.approx(delta - 1.959964 * se, abs=2e-4)
    assert high == pytest.approx(delta + 1.959964 * se, abs=2e-4)


def test_pairing_narrows_the_interval_when_outcomes_agree():
    # 190 episodes both solve, 2 + 6 discordant, 2 both fail: the unpaired interval ignores that agreement
    paired = paired_difference_interval(190, 2, 6, 2)
    unpaired = difference_interval(192, 200, 196, 200)
    assert paired[0] < -0.02 < paired[1] and paired[1] - paired[0] < unpaired[1] - unpaired[0]
    assert paired_difference_interval(0, 0, 0, 0) == (-1.0, 1.0)
    assert paired_difference_interval(50, 0, 0, 0)[0] < 0 < paired_difference_interval(50, 0, 0, 0)[1]
