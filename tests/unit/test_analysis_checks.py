"""Each check's three outcomes, its absolute second line, and the numbers it reports."""

from __future__ import annotations

import numpy as np
import pytest

from validation.analysis.checks import (
    Outcome,
    check_drift,
    check_error_rate,
    check_latency,
    check_quality,
    worst,
)
from validation.analysis.policy import CanaryPolicy, ErrorRateCheck, LatencyCheck, QualityCheck
from validation.drift import ColumnDrift, DriftResult
from validation.metrics.base import Histogram, Sample

POLICY = CanaryPolicy(min_samples=100)


def lat(variant: str, values: np.ndarray) -> Sample:
    return Sample("latency", variant, 60, "test", values=values, unit="ms")


def counts(metric: str, variant: str, ok: int, bad: int) -> Sample:
    return Sample(metric, variant, 60, "test", successes=ok, failures=bad)


def lognormal(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(50), 0.4, n) * scale


def test_worst_orders_fail_inconclusive_pass() -> None:
    assert worst([Outcome.PASS, Outcome.INCONCLUSIVE, Outcome.FAIL]) == Outcome.FAIL
    assert worst([Outcome.PASS, Outcome.INCONCLUSIVE]) == Outcome.INCONCLUSIVE
    assert worst([Outcome.PASS]) == Outcome.PASS
    assert worst([]) == Outcome.INCONCLUSIVE


def test_latency_pass_fail_and_reported_numbers() -> None:
    stable = lat("stable", lognormal(1, 500))
    ok = check_latency("latency", lat("canary", lognormal(2, 500)), stable, POLICY.latency, POLICY)
    bad = check_latency(
        "latency", lat("canary", lognormal(3, 500, 2.0)), stable, POLICY.latency, POLICY
    )
    assert ok.outcome == Outcome.PASS
    assert bad.outcome == Outcome.FAIL
    assert (bad.n_canary, bad.n_stable, bad.alpha) == (500, 500, 0.0125)
    assert bad.ci_level == pytest.approx(0.975)
    assert bad.effect is not None
    assert bad.ci_low is not None
    assert 1.5 < bad.ci_low < bad.effect
    assert "p95 ratio" in bad.reason
    assert "significant" in bad.reason
    assert bad.test.startswith("bootstrap p95 ratio")


def test_latency_beyond_tolerance_but_noisy_is_inconclusive() -> None:
    policy = CanaryPolicy(min_samples=20)
    stable = lat("stable", lognormal(1, 20))
    canary = lat("canary", lognormal(5, 20, 1.2))  # a seed whose p95 lands 1.6x above
    res = check_latency("latency", canary, stable, LatencyCheck(max_ratio=1.2), policy)
    assert res.effect is not None
    assert res.effect > 1.2
    assert res.outcome == Outcome.INCONCLUSIVE
    assert "not significant" in res.reason


def test_latency_absolute_limit_is_a_second_line() -> None:
    stable, canary = lat("stable", lognormal(1, 400)), lat("canary", lognormal(2, 400))
    cfg = LatencyCheck(max_ms=40.0)  # both ~95 ms at p95: same as stable, but over the limit
    res = check_latency("latency", canary, stable, cfg, POLICY)
    assert res.outcome == Outcome.FAIL
    assert "40 ms limit" in res.reason


def test_latency_from_histograms_and_mismatched_kinds() -> None:
    bounds = (10.0, 50.0, 100.0, 200.0, 500.0, float("inf"))
    stable = Sample("latency", "stable", 60, "prometheus",
                    histogram=Histogram(bounds, (50, 300, 100, 50, 0, 0)))  # fmt: skip
    canary = Sample("latency", "canary", 60, "prometheus",
                    histogram=Histogram(bounds, (10, 100, 100, 150, 140, 0)))  # fmt: skip
    res = check_latency("latency", canary, stable, POLICY.latency, POLICY)
    assert res.outcome == Outcome.FAIL
    assert res.n_canary == 500
    assert (res.stable_value, res.canary_value) == pytest.approx((150.0, 200 + 300 * 115 / 140))
    mixed = check_latency(
        "latency", lat("canary", lognormal(2, 500)), stable, POLICY.latency, POLICY
    )
    assert mixed.outcome == Outcome.INCONCLUSIVE
    assert "raw latencies or histograms" in mixed.reason


def test_too_few_samples_is_inconclusive_with_the_counts() -> None:
    res = check_latency(
        "ttft", lat("canary", lognormal(2, 99)), lat("stable", lognormal(1, 500)),
        POLICY.ttft, POLICY,
    )  # fmt: skip
    assert res.outcome == Outcome.INCONCLUSIVE
    assert "canary 99, stable 500, need >= 100" in res.reason


def test_error_rate_outcomes() -> None:
    stable = counts("errors", "stable", 1000, 0)
    fail = check_error_rate(counts("errors", "canary", 950, 50), stable, POLICY.error_rate, POLICY)
    small = check_error_rate(counts("errors", "canary", 995, 5), stable, POLICY.error_rate, POLICY)
    assert fail.outcome == Outcome.FAIL
    assert fail.effect == pytest.approx(0.05)
    assert fail.p_value is not None
    assert fail.p_value < 1e-10
    assert small.outcome == Outcome.PASS  # 0.5 pt: significant-ish, but within 1 pt
    noisy = CanaryPolicy(min_samples=20)
    res = check_error_rate(
        counts("errors", "canary", 18, 2), counts("errors", "stable", 20, 0),
        noisy.error_rate, noisy,
    )  # fmt: skip
    assert res.outcome == Outcome.INCONCLUSIVE  # 10 pt more, but 2 errors in 20 is noise


def test_error_rate_absolute_limit() -> None:
    cfg = ErrorRateCheck(max_increase=0.5, max_rate=0.02)
    res = check_error_rate(
        counts("errors", "canary", 900, 100), counts("errors", "stable", 900, 100), cfg, POLICY
    )
    assert res.outcome == Outcome.FAIL
    assert "2.00% limit" in res.reason


def test_quality_outcomes_and_floor() -> None:
    stable = counts("quality", "stable", 270, 30)
    drop = check_quality(counts("quality", "canary", 210, 90), stable, POLICY.quality, POLICY)
    same = check_quality(counts("quality", "canary", 265, 35), stable, POLICY.quality, POLICY)
    assert drop.outcome == Outcome.FAIL
    assert drop.effect == pytest.approx(-0.2)
    assert same.outcome == Outcome.PASS
    floor = QualityCheck(min_accuracy=0.95)
    low = check_quality(counts("quality", "canary", 265, 35), stable, floor, POLICY)
    assert low.outcome == Outcome.FAIL
    assert "floor" in low.reason


def test_count_checks_refuse_samples_without_counts() -> None:
    values = lat("canary", lognormal(1, 300))
    res = check_quality(values, values, POLICY.quality, POLICY)
    assert res.outcome == Outcome.INCONCLUSIVE
    assert "right/wrong" in res.reason


def drift_result(share: float, n: int = 500) -> DriftResult:
    cols = (
        ColumnDrift(column="prompt_length", method="ks", score=0.001, threshold=0.05,
                    p_value=0.001, drifted=share > 0),
        ColumnDrift(column="answer_format", method="z", score=0.5, threshold=0.05,
                    p_value=0.5, drifted=False),
    )  # fmt: skip
    return DriftResult(drift_share=share, dataset_drift=share >= 0.5, columns=cols,
                       n_reference=n, n_current=n)  # fmt: skip


def test_drift_check_uses_the_share_and_needs_rows() -> None:
    assert check_drift(drift_result(0.0), POLICY.drift, POLICY).outcome == Outcome.PASS
    failed = check_drift(drift_result(0.5), POLICY.drift, POLICY)
    assert failed.outcome == Outcome.FAIL
    assert "prompt_length" in failed.reason
    few = check_drift(drift_result(0.5, n=10), POLICY.drift, POLICY)
    assert few.outcome == Outcome.INCONCLUSIVE
