"""Paired comparison of candidate and champion on the same rows, with a non-inferiority margin.

Pass/fail scores (a row passes or not): b = rows only the candidate passes, c = rows only the
champion passes. The difference of pass rates is (b - c) / n.
- McNemar's test (statsmodels; exact binomial on the b + c discordant pairs when they are
  fewer than 25, chi-square otherwise) says whether the two differ at all.
- Non-inferiority (the gate): the one-sided (1 - alpha) lower bound of the difference must lie
  above -margin. The interval is the Agresti-Min adjusted Wald interval for paired
  proportions (0.5 added to each cell of the 2x2 table; Agresti & Min 2005): neither
  statsmodels nor scipy ships a paired-difference interval, and this one keeps its coverage
  with few discordant pairs, where the plain Wald interval collapses to a point.

Numeric scores (a share in 0..1 per row, e.g. fields right): the mean difference, a seeded
paired bootstrap interval (scipy.stats.bootstrap, paired resampling of rows) for the gate,
and the Wilcoxon signed-rank test (scipy) of H0: difference <= -margin as the p-value.

`rows_needed(margin, alpha, power, discordance)` is the row count at which a candidate no
worse than the champion passes with probability `power` (normal approximation; the variance
of the paired difference at no true difference is discordance / n), and never below the
count at which a candidate identical on every row can pass at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

from infra.errors import TooFewRowsError

_N = NormalDist()


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison: candidate - champion on the same `n` rows."""

    metric: str
    kind: Literal["pass_fail", "numeric"]
    n: int
    candidate: float
    champion: float
    diff: float
    ci_low: float
    ci_high: float
    """Two-sided (1 - 2 alpha) interval: its lower end is the one-sided (1 - alpha) bound."""
    p_value: float
    """McNemar (pass/fail) or Wilcoxon signed-rank (numeric) p-value of no difference."""
    p_noninferior: float
    """One-sided p-value of H0 'candidate worse by more than the margin'."""
    margin: float
    test: str
    discordant: tuple[int, int] = (0, 0)
    """(only candidate right, only champion right): pass/fail only."""

    @property
    def non_inferior(self) -> bool:
        return self.ci_low > -self.margin

    def describe(self) -> str:
        return (
            f"{self.metric}: candidate {self.candidate:.3f} vs champion {self.champion:.3f}, "
            f"diff {self.diff:+.3f} (CI {self.ci_low:+.3f}..{self.ci_high:+.3f}, margin "
            f"-{self.margin:.3f}), {self.test} p={self.p_value:.3g}"
        )


def paired_pass_fail(
    metric: str, candidate: Sequence[bool], champion: Sequence[bool], margin: float, alpha: float
) -> PairedResult:
    """McNemar + Agresti-Min interval of the paired difference of pass rates."""
    from statsmodels.stats.contingency_tables import mcnemar  # type: ignore[import-untyped]

    n = _same_length(candidate, champion)
    both = sum(a and b for a, b in zip(candidate, champion, strict=True))
    b = sum(a and not c for a, c in zip(candidate, champion, strict=True))
    c = sum(c and not a for a, c in zip(candidate, champion, strict=True))
    neither = n - both - b - c
    exact = b + c < 25
    p = (
        1.0
        if b + c == 0
        else float(mcnemar([[both, b], [c, neither]], exact=exact, correction=True).pvalue)
    )
    diff_adj, se = _agresti_min(b, c, n)
    z = _N.inv_cdf(1 - alpha)
    p_ni = 1 - _N.cdf((diff_adj + margin) / se)
    return PairedResult(metric=metric, kind="pass_fail", n=n, candidate=(both + b) / n,
                        champion=(both + c) / n, diff=(b - c) / n, ci_low=diff_adj - z * se,
                        ci_high=diff_adj + z * se, p_value=p, p_noninferior=p_ni, margin=margin,
                        test="mcnemar-exact" if exact else "mcnemar-chi2",
                        discordant=(b, c))  # fmt: skip


def _agresti_min(b: int, c: int, n: int) -> tuple[float, float]:
    """Adjusted difference and its standard error (0.5 added to every cell)."""
    bb, cc, nn = b + 0.5, c + 0.5, n + 2.0
    diff = (bb - cc) / nn
    var = ((bb + cc) / nn - diff * diff) / nn
    return diff, math.sqrt(max(var, 1e-12))


def paired_numeric(
    metric: str,
    candidate: Sequence[float],
    champion: Sequence[float],
    margin: float,
    alpha: float,
    seed: int = 0,
    resamples: int = 2000,
) -> PairedResult:
    """Mean difference, paired bootstrap interval, Wilcoxon signed-rank p-values."""
    from scipy import stats  # type: ignore[import-untyped]

    n = _same_length(candidate, champion)
    cand, champ = np.asarray(candidate, float), np.asarray(champion, float)
    d = cand - champ
    if np.all(d == d[0]):  # no spread: the bootstrap interval is the point itself
        low = high = float(d[0])
    else:
        boot = stats.bootstrap((d,), np.mean, confidence_level=1 - 2 * alpha,
                               n_resamples=resamples, method="percentile",
                               random_state=np.random.default_rng(seed))  # fmt: skip
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    p = 1.0 if np.all(d == 0) else float(stats.wilcoxon(d, zero_method="zsplit").pvalue)
    p_ni = float(stats.wilcoxon(d + margin, zero_method="zsplit", alternative="greater").pvalue)
    return PairedResult(metric=metric, kind="numeric", n=n, candidate=float(cand.mean()),
                        champion=float(champ.mean()), diff=float(d.mean()), ci_low=low,
                        ci_high=high, p_value=p, p_noninferior=p_ni, margin=margin,
                        test="wilcoxon+bootstrap")  # fmt: skip


def rows_needed(margin: float, alpha: float, power: float, discordance: float) -> int:
    """Rows at which a candidate no worse than the champion passes with `power`."""
    z_a, z_b = _N.inv_cdf(1 - alpha), _N.inv_cdf(power)
    by_power = math.ceil((z_a + z_b) ** 2 * discordance / margin**2)
    # Zero discordant pairs: Agresti-Min se is 1/(n+2); passing needs z_a/(n+2) < margin.
    at_all = math.floor(z_a / margin - 2) + 1
    return max(by_power, at_all, 1)


def check_rows(n: int, margin: float, alpha: float, power: float, discordance: float) -> None:
    """TooFewRowsError when `n` rows cannot give the non-inferiority test its power."""
    need = rows_needed(margin, alpha, power, discordance)
    if n < need:
        raise TooFewRowsError(
            f"the evaluation set has {n} rows; a non-inferiority margin of {margin:g} at "
            f"alpha {alpha:g} and power {power:g} (assuming {discordance:.0%} of rows answered "
            f"differently) needs at least {need} rows: add rows, or widen evaluation.margin"
        )


def _same_length(a: Sequence[object], b: Sequence[object]) -> int:
    if len(a) != len(b) or not a:
        raise ValueError(f"paired scores need the same non-zero length, got {len(a)} and {len(b)}")
    return len(a)
