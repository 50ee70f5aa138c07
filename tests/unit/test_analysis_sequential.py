"""The confidence sequences against their definitions and by seeded coverage simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from validation.analysis import sequential as cs


def test_plausible_counts_are_the_unrejected_interval_of_the_mixture() -> None:
    for n in (1, 7, 100, 1234):
        for p in (0.5, 0.95, 0.99):
            a, b = p * cs.QUANTILE_PRIOR, (1 - p) * cs.QUANTILE_PRIOR
            k = np.arange(n + 1)
            log_m = (special.betaln(a + k, b + n - k) - special.betaln(a, b)
                     - k * math.log(p) - (n - k) * math.log1p(-p))  # fmt: skip
            ok = np.flatnonzero(log_m < math.log(1 / 0.01))
            assert cs.plausible_counts(n, p, 0.01) == (ok[0], ok[-1])


def test_quantile_cs_covers_the_true_quantile_at_every_look() -> None:
    """200 seeded streams of 2000 lognormal values, looked at every 50: coverage of p95
    at all 40 looks together must hold in >= 1 - alpha of the streams."""
    rng, alpha, p = np.random.default_rng(11), 0.1, 0.95
    truth = math.exp(0.3 * 1.6448536269514722)  # lognormal(0, 0.3) p95
    misses = 0
    for _ in range(200):
        x = rng.lognormal(0.0, 0.3, 2000)
        for n in range(50, 2001, 50):
            low, high = cs.quantile_cs(x[:n], p, alpha)
            if not low <= truth <= high:
                misses += 1
                break
    assert misses / 200 <= alpha


def test_quantile_cs_is_unbounded_until_the_tail_is_seen_and_presorted_agrees() -> None:
    x = np.random.default_rng(0).lognormal(0, 0.3, 300)
    low, high = cs.quantile_cs(x, 0.99, 0.01)
    assert math.isinf(high)
    assert math.isfinite(low)
    assert cs.quantile_cs(x, 0.5, 0.01) == cs.quantile_cs(np.sort(x), 0.5, 0.01, presorted=True)
    assert cs.quantile_cs(np.empty(0), 0.5, 0.1) == (-math.inf, math.inf)


def test_rate_cs_covers_at_every_look_and_handles_zero_and_all() -> None:
    rng, alpha, p = np.random.default_rng(3), 0.1, 0.01
    misses = 0
    for _ in range(300):
        k = np.cumsum(rng.random(3000) < p)
        for n in range(100, 3001, 100):
            low, high = cs.rate_cs(int(k[n - 1]), n, alpha)
            if not low <= p <= high:
                misses += 1
                break
    assert misses / 300 <= alpha
    assert cs.rate_cs(0, 500, 0.01)[0] == 0.0
    assert cs.rate_cs(500, 500, 0.01)[1] == 1.0
    assert cs.rate_cs(0, 0, 0.01) == (0.0, 1.0)


def test_betting_cs_batch_updates_equal_one_pass_and_cover_the_mean() -> None:
    rng = np.random.default_rng(5)
    y = rng.choice([0.0, 0.5, 1.0], size=600, p=[0.1, 0.7, 0.2])  # paired 0/1 scores
    state = cs.BettingCS(0.05)
    for chunk in np.array_split(y, 7):
        state.update(chunk)
    assert state.bounds() == pytest.approx(cs.mean_cs(y, 0.05))
    low, high = state.bounds()
    assert low <= 0.55 <= high
    assert high - low < 0.2
    misses = 0
    for _ in range(50):
        z = (rng.random(600) < 0.3).astype(float)
        bet = cs.BettingCS(0.1, grid=401)
        for chunk in np.array_split(z, 12):
            bet.update(chunk)
            lo, hi = bet.bounds()
            if not lo <= 0.3 <= hi:
                misses += 1
                break
    assert misses / 50 <= 0.1


def test_difference_and_ratio_of_variant_bounds() -> None:
    assert cs.difference((10.0, 12.0), (9.0, 10.0)) == (0.0, 3.0)
    assert cs.ratio((10.0, 12.0), (8.0, 10.0)) == (1.0, 1.5)
    assert cs.ratio((-math.inf, 12.0), (8.0, math.inf)) == (0.0, 1.5)
    assert cs.ratio((10.0, 12.0), (-math.inf, 10.0)) == (1.0, math.inf)


def _t_martingale(x: np.ndarray, m: float, c2: float = cs.T_PRIOR) -> float:
    """The scale-invariant mixture M_n(m), computed from its definition."""
    y, n = x - m, x.size
    s, v = float(np.sum(y)), float(np.sum(y * y))
    return math.sqrt(c2 / (n + c2)) * (v / (v - s * s / (n + c2))) ** (n / 2)


def test_t_cs_ends_are_where_the_mixture_martingale_reaches_one_over_alpha() -> None:
    rng = np.random.default_rng(5)
    for n in (5, 9, 30, 200):
        x = rng.normal(2.0, 0.5, n)
        low, high = cs.t_cs(x, 0.01)
        for end in (low, high):
            assert _t_martingale(x, end) == pytest.approx(100.0, rel=1e-6)
        assert _t_martingale(x, float(np.mean(x))) < 100.0
    assert cs.t_cs(rng.normal(0, 1, 3), 0.01) == (-math.inf, math.inf)  # too few to bound
    assert cs.t_cs(np.array([1.0]), 0.01) == (-math.inf, math.inf)


def test_t_cs_covers_the_mean_at_every_look_whatever_the_scale() -> None:
    """400 seeded streams of 60 Gaussian windows, looked at after each: all 59 looks
    together must cover in >= 1 - alpha of the streams, at any variance."""
    rng, alpha = np.random.default_rng(12), 0.1
    for sd in (0.05, 3.0):
        misses = 0
        for _ in range(400):
            x = rng.normal(0.7, sd, 60)
            if any(not lo <= 0.7 <= hi for lo, hi in (cs.t_cs(x[:n], alpha) for n in range(2, 61))):
                misses += 1
        assert misses / 400 <= alpha
