"""The statistics: exact bootstrap sampler, PromQL-compatible histogram quantile, intervals."""

from __future__ import annotations

import numpy as np
import pytest

from validation.analysis.stats import (
    bootstrap_quantiles,
    fisher_greater,
    histogram_quantile,
    histogram_ratio_test,
    newcombe_diff,
    quantile_ratio_test,
    sample_quantile,
)

BOUNDS = [0.1, 0.5, 1.0, float("inf")]
COUNTS = [10, 40, 40, 10]  # cumulative 10, 50, 90, 100


def test_exact_bootstrap_matches_brute_force_resampling() -> None:
    rng = np.random.default_rng(7)
    x = rng.lognormal(3, 0.5, 101)
    exact = bootstrap_quantiles(x, 0.95, 20_000, np.random.default_rng(1))
    brute = np.array([
        sample_quantile(rng.choice(x, x.size), 0.95) for _ in range(5_000)
    ])  # fmt: skip
    probs = [0.05, 0.25, 0.5, 0.75, 0.95]
    # both are distributions over the same order statistics: quantiles land on the same ones
    assert np.quantile(exact, probs) == pytest.approx(np.quantile(brute, probs), rel=0.03)


def test_sample_quantile_is_the_ceil_order_statistic() -> None:
    x = np.arange(1.0, 101.0)
    assert sample_quantile(x, 0.95) == 95.0
    assert sample_quantile(x, 0.951) == 96.0


@pytest.mark.parametrize(
    ("q", "want"),
    [(0.05, 0.05), (0.3, 0.3), (0.5, 0.5), (0.9, 1.0), (0.95, 1.0), (0.99, 1.0)],
)
def test_histogram_quantile_follows_promql(q: float, want: float) -> None:
    # interpolation inside the bucket; a rank in the +Inf bucket gives the top finite bound
    assert histogram_quantile(BOUNDS, COUNTS, q)[0] == pytest.approx(want)


def test_histogram_quantile_rows_and_empty() -> None:
    out = histogram_quantile(BOUNDS, [COUNTS, [0, 0, 0, 0], [0, 100, 0, 0]], 0.5)
    assert out[0] == pytest.approx(0.5)
    assert np.isnan(out[1])
    assert out[2] == pytest.approx(0.3)


def test_ratio_test_detects_a_slower_canary_and_is_reproducible() -> None:
    rng = np.random.default_rng(3)
    stable = rng.lognormal(np.log(50), 0.5, 400)
    canary = rng.lognormal(np.log(50), 0.5, 400) * 2
    one = quantile_ratio_test(canary, stable, 0.95, 5_000, seed=11, level=0.95)
    two = quantile_ratio_test(canary, stable, 0.95, 5_000, seed=11, level=0.95)
    assert one == two
    assert one.ratio == pytest.approx(one.canary / one.stable)
    assert 1.5 < one.ci_low < one.ratio < one.ci_high < 3
    assert one.p_value == pytest.approx(1 / 5_001)
    assert one.canary_low < one.canary < one.canary_high


def test_histogram_ratio_test_on_shifted_buckets() -> None:
    bounds = [10, 20, 50, 100, 200, float("inf")]
    stable = [100, 300, 500, 80, 20, 0]
    canary = [20, 100, 400, 300, 170, 10]
    res = histogram_ratio_test(bounds, canary, stable, 0.95, 2_000, seed=0, level=0.95)
    assert res.stable == pytest.approx(histogram_quantile(bounds, stable, 0.95)[0])
    assert res.ratio > 2
    assert res.p_value < 0.01
    same = histogram_ratio_test(bounds, stable, stable, 0.95, 2_000, seed=0, level=0.95)
    assert same.ratio == 1.0
    assert same.p_value > 0.3


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Stat Med 17:873, method 10: 56/70 - 48/80
    d, low, high = newcombe_diff(56, 70, 48, 80, 0.95)
    assert (d, low, high) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


def test_fisher_is_one_sided_towards_more_canary_failures() -> None:
    _, p_worse = fisher_greater(8, 200, 0, 200)
    _, p_better = fisher_greater(0, 200, 8, 200)
    assert p_worse < 0.01 < 0.99 < p_better
