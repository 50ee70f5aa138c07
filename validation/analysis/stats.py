"""The statistics behind the canary checks: pure numpy/scipy functions, seeded, vectorised.

- `quantile_ratio_test`: one-sided bootstrap test and percentile CI of the ratio of a
  quantile (p95) of canary over stable, from raw observations. The bootstrap distribution
  of a sample quantile is drawn exactly instead of by resampling whole arrays: the
  k-th order statistic of a size-n resample is <= x_(j) iff Binomial(n, j/n) >= k, so a
  position is drawn from that CDF by inversion. That is O(n log n + B log n) instead of
  O(B n), so 1M latencies and B = 10,000 resamples cost well under a second.
- `histogram_ratio_test`: the same for bucketed data (Prometheus histograms): multinomial
  resampling of bucket counts, quantile interpolated inside the bucket like PromQL's
  `histogram_quantile`.
- `fisher_greater`: one-sided Fisher exact test, canary failure rate > stable.
- `newcombe_diff`: Newcombe's hybrid score interval for a difference of two proportions
  (built from Wilson intervals, sound at 0/n).

The quantile of a sample is the order statistic x_(ceil(q n)) (numpy's "inverted_cdf"),
the definition whose bootstrap distribution the Binomial identity gives exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps  # type: ignore[import-untyped]

from validation.quality import wilson

FloatArray = npt.NDArray[np.float64]
# Quantiles at or below this count as this, so a ratio never divides by zero.
_TINY = 1e-9


@dataclass(frozen=True)
class RatioTest:
    """A ratio canary/stable with a one-sided p-value (H1: ratio > 1) and a two-sided CI."""

    ratio: float
    canary: float
    stable: float
    p_value: float
    ci_low: float
    ci_high: float
    canary_low: float  # CI of the canary's own quantile, same level
    canary_high: float
    level: float
    resamples: int


def sample_quantile(values: FloatArray, q: float) -> float:
    """The order statistic x_(ceil(q n)) of `values` (numpy method "inverted_cdf")."""
    return float(np.quantile(values, q, method="inverted_cdf"))


def bootstrap_quantiles(
    values: FloatArray, q: float, resamples: int, rng: np.random.Generator
) -> FloatArray:
    """`resamples` draws of the bootstrap distribution of the sample quantile, exactly."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    k = max(1, math.ceil(q * n))
    # cdf[j-1] = P(resampled k-th order statistic <= x_(j)) = P(Binomial(n, j/n) >= k)
    cdf = sps.binom.sf(k - 1, n, np.arange(1, n + 1) / n)
    cdf[-1] = 1.0
    positions = np.searchsorted(cdf, rng.random(resamples), side="left")
    return x[np.minimum(positions, n - 1)]


def histogram_quantile(
    upper_bounds: Sequence[float], counts: npt.ArrayLike, q: float
) -> FloatArray:
    """PromQL `histogram_quantile` for one or many rows of per-bucket (not cumulative) counts.

    `upper_bounds` ascend and may end in +Inf; a quantile that falls in the +Inf bucket is
    the highest finite bound, as in Prometheus. Rows with no observations give NaN.
    """
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    rows = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    cum = np.cumsum(rows, axis=1)
    total = cum[:, -1]
    rank = q * total
    # first bucket whose cumulative count reaches the rank (PromQL's sort.Search)
    idx = np.minimum(np.sum(cum < rank[:, None], axis=1), bounds.size - 1)
    finite_top = bounds[np.isfinite(bounds)][-1] if np.isfinite(bounds).any() else np.nan
    lower = np.where(idx > 0, bounds[np.maximum(idx - 1, 0)], 0.0)
    lower = np.where((idx == 0) & (bounds[0] <= 0), bounds[0], lower)
    upper = bounds[idx]
    below = np.where(idx > 0, cum[np.arange(cum.shape[0]), np.maximum(idx - 1, 0)], 0.0)
    in_bucket = rows[np.arange(rows.shape[0]), idx]
    frac = np.divide(rank - below, in_bucket, out=np.ones_like(rank), where=in_bucket > 0)
    out = lower + (upper - lower) * frac
    out = np.where(np.isinf(upper), finite_top, out)
    return np.where(total > 0, out, np.nan)


def quantile_ratio_test(
    canary: FloatArray, stable: FloatArray, q: float, resamples: int, seed: int, level: float
) -> RatioTest:
    """Bootstrap test of quantile(canary)/quantile(stable) > 1 from raw observations."""
    rng = np.random.default_rng(seed)
    boot_c = bootstrap_quantiles(canary, q, resamples, rng)
    boot_s = bootstrap_quantiles(stable, q, resamples, rng)
    return _ratio_result(
        sample_quantile(canary, q), sample_quantile(stable, q), boot_c, boot_s, level
    )


def histogram_ratio_test(
    upper_bounds: Sequence[float],
    canary_counts: Sequence[float],
    stable_counts: Sequence[float],
    q: float,
    resamples: int,
    seed: int,
    level: float,
) -> RatioTest:
    """Bootstrap test of the quantile ratio from two histograms with the same buckets."""
    rng = np.random.default_rng(seed)
    point_c = float(histogram_quantile(upper_bounds, canary_counts, q)[0])
    point_s = float(histogram_quantile(upper_bounds, stable_counts, q)[0])
    boot_c = histogram_quantile(upper_bounds, _multinomial(canary_counts, resamples, rng), q)
    boot_s = histogram_quantile(upper_bounds, _multinomial(stable_counts, resamples, rng), q)
    return _ratio_result(point_c, point_s, boot_c, boot_s, level)


def _multinomial(counts: Sequence[float], resamples: int, rng: np.random.Generator) -> FloatArray:
    c = np.clip(np.asarray(counts, dtype=np.float64), 0, None)
    n = round(float(c.sum()))  # Prometheus increase() extrapolates to fractional counts
    out: FloatArray = rng.multinomial(n, c / c.sum(), size=resamples).astype(np.float64)
    return out


def _ratio_result(
    point_c: float, point_s: float, boot_c: FloatArray, boot_s: FloatArray, level: float
) -> RatioTest:
    ratios = np.maximum(boot_c, _TINY) / np.maximum(boot_s, _TINY)
    b = ratios.size
    # +1s: the observed data count as one resample, so p is never exactly 0.
    p = (1 + int(np.count_nonzero(ratios <= 1.0))) / (b + 1)
    tail = (1 - level) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    c_low, c_high = np.quantile(boot_c, [tail, 1 - tail])
    return RatioTest(
        ratio=max(point_c, _TINY) / max(point_s, _TINY),
        canary=point_c,
        stable=point_s,
        p_value=p,
        ci_low=float(low),
        ci_high=float(high),
        canary_low=float(c_low),
        canary_high=float(c_high),
        level=level,
        resamples=b,
    )


def fisher_greater(
    canary_fail: int, canary_n: int, stable_fail: int, stable_n: int
) -> tuple[float, float]:
    """(odds ratio, one-sided p) for H1: canary failure rate > stable failure rate."""
    table = [[canary_fail, canary_n - canary_fail], [stable_fail, stable_n - stable_fail]]
    res = sps.fisher_exact(table, alternative="greater")
    return float(res.statistic), float(res.pvalue)


def newcombe_diff(x1: int, n1: int, x2: int, n2: int, level: float) -> tuple[float, float, float]:
    """(p1 - p2, low, high): Newcombe's hybrid score interval (method 10) at `level`."""
    z = float(sps.norm.ppf(1 - (1 - level) / 2))
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, low), min(1.0, high)


def z_for(level: float) -> float:
    """The two-sided normal quantile for a confidence `level` (0.95 -> 1.96)."""
    return float(sps.norm.ppf(1 - (1 - level) / 2))
