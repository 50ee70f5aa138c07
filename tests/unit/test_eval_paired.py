"""Paired tests: McNemar / Tango score interval (pass/fail), bootstrap + Wilcoxon (numeric);
false-pass rate at the margin and power at no difference, by seeded simulation."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from infra.errors import TooFewRowsError
from validation.evaluation.paired import (
    check_rows,
    paired_numeric,
    paired_pass_fail,
    rows_needed,
    tango_z,
)

MARGIN, ALPHA = 0.05, 0.05
Z = NormalDist().inv_cdf(1 - ALPHA)


def pass_share(n: int, p_only_cand: float, p_only_champ: float, reps: int, seed: int) -> float:
    """Share of simulated sets of `n` rows on which the gate's test passes non-inferiority."""
    rng = np.random.default_rng(seed)
    passed = 0
    for _ in range(reps):
        u = rng.random(n)
        b = int((u < p_only_cand).sum())
        c = int(((u >= p_only_cand) & (u < p_only_cand + p_only_champ)).sum())
        passed += tango_z(b, c, n, -MARGIN) > Z
    return passed / reps


@pytest.mark.parametrize(("p_b", "p_c"), [(0.01, 0.06), (0.0, 0.05), (0.05, 0.10)])
def test_false_pass_rate_at_the_margin_stays_near_alpha(p_b: float, p_c: float) -> None:
    n = rows_needed(MARGIN, ALPHA, 0.8, 0.05)
    assert pass_share(n, p_b, p_c, reps=3000, seed=1) <= ALPHA + 0.015  # measured 0.030-0.051


def test_power_at_no_difference_reaches_the_asked_power() -> None:
    n = rows_needed(MARGIN, ALPHA, 0.8, 0.05)
    assert n == 198
    assert pass_share(n, 0.025, 0.025, reps=3000, seed=2) >= 0.8  # measured 0.88


def test_identical_models_on_too_few_rows_cannot_pass() -> None:
    same = [True] * 50
    result = paired_pass_fail("pass", same, same, MARGIN, ALPHA)
    assert result.diff == 0
    assert result.p_value == 1.0
    assert not result.non_inferior
    assert paired_pass_fail("pass", [True] * 198, [True] * 198, MARGIN, ALPHA).non_inferior


def test_mcnemar_is_exact_with_few_discordant_pairs_and_sees_a_real_drop() -> None:
    champ = [True] * 180 + [False] * 20
    cand = [True] * 140 + [False] * 60  # 40 rows lost, none gained
    worse = paired_pass_fail("pass", cand, champ, MARGIN, ALPHA)
    assert worse.test == "mcnemar-chi2"
    assert worse.p_value < 1e-6
    assert worse.discordant == (0, 40)
    assert not worse.non_inferior
    assert worse.ci_low < worse.diff == -0.2 < worse.ci_high
    few = paired_pass_fail("pass", [True] * 199 + [False], [True] * 200, MARGIN, ALPHA)
    assert few.test == "mcnemar-exact"
    assert few.non_inferior


def test_numeric_comparison_false_pass_and_power() -> None:
    rng = np.random.default_rng(3)
    false_pass = power = 0
    reps = 60
    for i in range(reps):
        champ = rng.random(150)
        noise = rng.normal(0, 0.1, 150)
        false_pass += paired_numeric("f", list(champ - MARGIN + noise), list(champ), MARGIN,
                                     ALPHA, seed=i, resamples=400).non_inferior  # fmt: skip
        power += paired_numeric("f", list(champ + noise), list(champ), MARGIN, ALPHA, seed=i,
                                resamples=400).non_inferior  # fmt: skip
    assert false_pass / reps <= 0.12  # measured 0.04 over 200 runs
    assert power / reps >= 0.95  # measured 1.0


def test_too_few_rows_are_refused_with_the_count_needed() -> None:
    check_rows(198, MARGIN, ALPHA, 0.8, 0.05)
    with pytest.raises(TooFewRowsError, match=r"has 100 rows.*needs at least 198 rows"):
        check_rows(100, MARGIN, ALPHA, 0.8, 0.05)
    assert rows_needed(0.02, ALPHA, 0.8, 0.05) > rows_needed(0.1, ALPHA, 0.8, 0.05)
