"""One function per canary check: canary vs stable in the same window -> CheckResult.

How each check decides (policy.py has the shared rule and the thresholds):

- latency / ttft: ratio of the p95 of canary over stable, one-sided bootstrap test of
  ratio > 1 (stats.quantile_ratio_test; histogram_ratio_test for Prometheus buckets).
  Why a bootstrap of the p95 ratio and not a Mann-Whitney U test: the policy is about the
  tail (p95), and U tests whether one whole distribution sits above the other. A canary
  with the same median and a doubled tail passes U; with large samples U flags a 2 %
  median shift nobody cares about; and on histogram buckets U drowns in ties. The
  bootstrap estimates exactly the quantity the threshold is written in, gives a CI of it,
  works on raw values and on buckets alike, and its exact order-statistic sampler is
  cheap (stats.py). Measured calibration: see tests/unit/test_analysis_properties.py.
- error_rate: difference of failure rates, one-sided Fisher exact test (exact at the small
  counts a short canary step has; a z-test is unreliable with 0-3 errors), Newcombe CI.
- quality: difference of golden-prompt accuracies, validation.quality.p_value_worse
  (one-sided pooled two-proportion z-test), Newcombe CI of the difference, Wilson bound
  of the canary's accuracy against an absolute floor.
- drift: the Evidently drift share of the canary's rows against the reference, vs
  `max_share` (the per-column tests and their thresholds are Evidently's).

CIs are two-sided at level 1 - 2 x alpha_check, so "CI entirely beyond 1 (or 0)" and
"one-sided p < alpha_check" say the same thing.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from scipy import stats as sps  # type: ignore[import-untyped]

from validation.analysis import stats
from validation.analysis.policy import (
    CanaryPolicy,
    DriftCheck,
    ErrorRateCheck,
    LatencyCheck,
    QualityCheck,
)
from validation.drift import DriftResult
from validation.metrics.base import Sample
from validation.quality import QualityScore, p_value_worse, wilson


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 (not a password)
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class CheckResult(BaseModel):
    """One check's verdict with the numbers it was decided on."""

    model_config = ConfigDict(frozen=True)

    name: str
    outcome: Outcome
    reason: str
    test: str = ""
    n_canary: int = 0
    n_stable: int = 0
    canary_value: float | None = None
    stable_value: float | None = None
    effect: float | None = None  # ratio (latency), difference (rates), share (drift)
    statistic: float | None = None  # the test's own statistic (odds ratio, z, ...)
    p_value: float | None = None  # one-sided, H1: canary worse
    ci_low: float | None = None  # CI of `effect`
    ci_high: float | None = None
    ci_level: float | None = None
    alpha: float | None = None


def worst(outcomes: list[Outcome]) -> Outcome:
    """fail beats inconclusive beats pass; nothing at all is inconclusive."""
    if Outcome.FAIL in outcomes:
        return Outcome.FAIL
    if Outcome.INCONCLUSIVE in outcomes or not outcomes:
        return Outcome.INCONCLUSIVE
    return Outcome.PASS


def inconclusive(name: str, reason: str, n_canary: int = 0, n_stable: int = 0) -> CheckResult:
    return CheckResult(name=name, outcome=Outcome.INCONCLUSIVE, reason=reason,
                       n_canary=n_canary, n_stable=n_stable)  # fmt: skip


def _too_few(name: str, canary: Sample, stable: Sample, need: int) -> CheckResult | None:
    if canary.n >= need and stable.n >= need:
        return None
    return inconclusive(
        name,
        f"not enough samples: canary {canary.n}, stable {stable.n}, need >= {need} each; "
        f"run the step longer or send more load",
        canary.n,
        stable.n,
    )


def _judge(beyond: bool, p: float, alpha: float, what: str) -> tuple[Outcome, str]:
    if not beyond:
        return Outcome.PASS, f"{what} within tolerance"
    if p < alpha:
        return Outcome.FAIL, f"{what} beyond tolerance and significant (p={p:.3g} < {alpha:.3g})"
    return Outcome.INCONCLUSIVE, (
        f"{what} beyond tolerance but not significant (p={p:.3g} >= {alpha:.3g}); "
        f"more samples needed"
    )


def check_latency(
    name: str, canary: Sample, stable: Sample, cfg: LatencyCheck, policy: CanaryPolicy
) -> CheckResult:
    """Quantile ratio canary/stable vs `cfg.max_ratio` (and `cfg.max_ms`)."""
    short = _too_few(name, canary, stable, policy.min_samples_for(cfg))
    if short is not None:
        return short
    alpha = policy.check_alpha()
    level = 1 - 2 * alpha
    test = _ratio_test(canary, stable, cfg.quantile, policy, level)
    if isinstance(test, str):
        return inconclusive(name, test, canary.n, stable.n)
    pct = f"p{round(cfg.quantile * 100)}"
    outcome, why = _judge(test.ratio > cfg.max_ratio, test.p_value, alpha,
                          f"{pct} ratio {test.ratio:.3g} (limit {cfg.max_ratio:g})")  # fmt: skip
    outcomes, reasons = [outcome], [why]
    if cfg.max_ms is not None and test.canary > cfg.max_ms:
        sure = test.canary_low > cfg.max_ms
        outcomes.append(Outcome.FAIL if sure else Outcome.INCONCLUSIVE)
        reasons.append(f"canary {pct} {test.canary:.4g} ms above the {cfg.max_ms:g} ms limit"
                       + ("" if sure else " but not confidently"))  # fmt: skip
    return CheckResult(
        name=name,
        outcome=worst(outcomes),
        reason=f"{pct} canary {test.canary:.4g} ms vs stable {test.stable:.4g} ms; "
        + "; ".join(reasons),
        test=f"bootstrap {pct} ratio, one-sided (B={test.resamples}, seed {policy.seed})",
        n_canary=canary.n,
        n_stable=stable.n,
        canary_value=test.canary,
        stable_value=test.stable,
        effect=test.ratio,
        statistic=test.ratio,
        p_value=test.p_value,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        ci_level=level,
        alpha=alpha,
    )


def _ratio_test(
    canary: Sample, stable: Sample, q: float, policy: CanaryPolicy, level: float
) -> stats.RatioTest | str:
    b, seed = policy.bootstrap_resamples, policy.seed
    if canary.values is not None and stable.values is not None:
        return stats.quantile_ratio_test(canary.values, stable.values, q, b, seed, level)
    hc, hs = canary.histogram, stable.histogram
    if hc is not None and hs is not None:
        if hc.upper_bounds != hs.upper_bounds:
            return "canary and stable histograms have different buckets; cannot compare them"
        return stats.histogram_ratio_test(hc.upper_bounds, hc.counts, hs.counts, q, b, seed, level)
    return (
        f"need raw latencies or histograms for both variants (got canary from {canary.source}, "
        f"stable from {stable.source}); a bare percentile cannot be tested"
    )


def _counts(sample: Sample) -> tuple[int, int] | None:
    if sample.successes is None or sample.failures is None:
        return None
    return sample.failures, sample.n


def check_error_rate(
    canary: Sample, stable: Sample, cfg: ErrorRateCheck, policy: CanaryPolicy
) -> CheckResult:
    """Failure-rate increase canary - stable vs `cfg.max_increase` (and `cfg.max_rate`)."""
    name = "error_rate"
    short = _too_few(name, canary, stable, policy.min_samples_for(cfg))
    if short is not None:
        return short
    c, s = _counts(canary), _counts(stable)
    if c is None or s is None:
        return inconclusive(
            name, "error samples carry no success/failure counts", canary.n, stable.n
        )
    alpha = policy.check_alpha()
    level = 1 - 2 * alpha
    diff, low, high = stats.newcombe_diff(c[0], c[1], s[0], s[1], level)
    odds, p = stats.fisher_greater(c[0], c[1], s[0], s[1])
    rc, rs = c[0] / c[1], s[0] / s[1]
    what = f"increase {diff * 100:+.2f} pt (limit {cfg.max_increase * 100:g} pt)"
    outcome, why = _judge(diff > cfg.max_increase, p, alpha, what)
    outcomes, reasons = [outcome], [why]
    if cfg.max_rate is not None and rc > cfg.max_rate:
        sure = wilson(c[0], c[1], stats.z_for(level))[0] > cfg.max_rate
        outcomes.append(Outcome.FAIL if sure else Outcome.INCONCLUSIVE)
        reasons.append(f"canary rate above the {cfg.max_rate:.2%} limit"
                       + ("" if sure else " but not confidently"))  # fmt: skip
    return CheckResult(
        name=name,
        outcome=worst(outcomes),
        reason=f"error rate canary {rc:.2%} ({c[0]}/{c[1]}) vs stable {rs:.2%} ({s[0]}/{s[1]}); "
        + "; ".join(reasons),
        test="Fisher exact, one-sided (canary rate > stable); Newcombe CI of the difference",
        n_canary=c[1],
        n_stable=s[1],
        canary_value=rc,
        stable_value=rs,
        effect=diff,
        statistic=odds,
        p_value=p,
        ci_low=low,
        ci_high=high,
        ci_level=level,
        alpha=alpha,
    )


def check_quality(
    canary: Sample, stable: Sample, cfg: QualityCheck, policy: CanaryPolicy
) -> CheckResult:
    """Accuracy drop stable - canary vs `cfg.max_drop` (and the floor `cfg.min_accuracy`)."""
    name = "quality"
    short = _too_few(name, canary, stable, policy.min_samples_for(cfg))
    if short is not None:
        return short
    if canary.successes is None or stable.successes is None:
        return inconclusive(name, "quality samples carry no right/wrong counts", canary.n, stable.n)
    alpha = policy.check_alpha()
    level = 1 - 2 * alpha
    sc = QualityScore.from_counts(canary.successes, canary.n)
    ss = QualityScore.from_counts(stable.successes, stable.n)
    diff, low, high = stats.newcombe_diff(sc.correct, sc.n, ss.correct, ss.n, level)
    p = p_value_worse(sc, ss)
    what = f"drop {-diff * 100:.1f} pt (limit {cfg.max_drop * 100:g} pt)"
    outcome, why = _judge(-diff > cfg.max_drop, p, alpha, what)
    outcomes, reasons = [outcome], [why]
    if cfg.min_accuracy is not None and sc.accuracy < cfg.min_accuracy:
        sure = wilson(sc.correct, sc.n, stats.z_for(level))[1] < cfg.min_accuracy
        outcomes.append(Outcome.FAIL if sure else Outcome.INCONCLUSIVE)
        reasons.append(f"canary below the {cfg.min_accuracy:.1%} floor"
                       + ("" if sure else " but not confidently"))  # fmt: skip
    return CheckResult(
        name=name,
        outcome=worst(outcomes),
        reason=f"accuracy canary {sc.accuracy:.1%} ({sc.correct}/{sc.n}) vs stable "
        f"{ss.accuracy:.1%} ({ss.correct}/{ss.n}); " + "; ".join(reasons),
        test="two-proportion z-test, one-sided (canary worse); Newcombe CI of the difference",
        n_canary=sc.n,
        n_stable=ss.n,
        canary_value=sc.accuracy,
        stable_value=ss.accuracy,
        effect=diff,
        statistic=float(sps.norm.ppf(min(max(p, 1e-300), 1 - 1e-16))),  # z; finite
        p_value=p,
        ci_low=low,
        ci_high=high,
        ci_level=level,
        alpha=alpha,
    )


def check_drift(result: DriftResult, cfg: DriftCheck, policy: CanaryPolicy) -> CheckResult:
    """Evidently drift share vs `cfg.max_share`."""
    name, need = "drift", policy.min_samples_for(cfg)
    if result.n_current < need or result.n_reference < need:
        return inconclusive(
            name,
            f"not enough rows for drift: current {result.n_current}, reference "
            f"{result.n_reference}, need >= {need} each",
            result.n_current,
            result.n_reference,
        )
    drifted = [c.column for c in result.columns if c.drifted]
    failed = result.drift_share >= cfg.max_share
    verdict = "at or above" if failed else "below"
    return CheckResult(
        name=name,
        outcome=Outcome.FAIL if failed else Outcome.PASS,
        reason=f"drift share {result.drift_share:.2f} {verdict} the limit {cfg.max_share:.2f} "
        f"(drifted: {', '.join(drifted) or 'none'})",
        test="Evidently DataDriftPreset ("
        + ", ".join(f"{c.column}: {c.method}" for c in result.columns)
        + ")",
        n_canary=result.n_current,
        n_stable=result.n_reference,
        effect=result.drift_share,
        statistic=result.drift_share,
    )
