"""Step verdicts from a fake source, next actions, hard failures, policy sizing."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from validation.analysis import (
    ActionKind,
    CanaryHealth,
    CanaryPolicy,
    Outcome,
    analyze_step,
    detect_hard_failure,
    next_action,
    samples_needed,
)
from validation.analysis.checks import CheckResult, inconclusive
from validation.analysis.verdict import aggregate, health_from_errors
from validation.drift import DriftResult
from validation.metrics.base import MetricSourceError, Sample
from validation.metrics.fake import FakeSource

POLICY = CanaryPolicy(drift={"enabled": False})


def healthy_source(n: int = 400, seed: int = 0, canary_ttft: bool = True) -> FakeSource:
    rng = np.random.default_rng(seed)
    src = FakeSource()
    for variant in ("stable", "canary"):
        src.values("latency", variant, rng.lognormal(np.log(50), 0.4, n))
        if variant == "stable" or canary_ttft:
            src.values("ttft", variant, rng.lognormal(np.log(10), 0.4, n))
        src.counts("errors", variant, successes=n, failures=0)
        src.counts("quality", variant, successes=int(0.9 * n), failures=n - int(0.9 * n))
    return src


def test_all_checks_pass_on_a_healthy_canary() -> None:
    source = healthy_source()
    verdict = analyze_step(source, POLICY, window_s=120, canary_weight=25)
    assert verdict.outcome == Outcome.PASS
    assert [c.name for c in verdict.checks] == ["latency", "ttft", "error_rate", "quality"]
    assert {(m, v, w) for m, v, w in source.calls} >= {("latency", "canary", 120)}
    rows = verdict.table()
    assert rows[0]["check"] == "latency"
    assert rows[0]["n_canary"] == 400
    assert verdict.canary_weight == 25


def test_missing_metric_makes_the_step_inconclusive_not_pass() -> None:
    source = healthy_source(canary_ttft=False)  # the canary never streamed
    verdict = analyze_step(source, POLICY, window_s=60)
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert "NoDataError" in verdict.check("ttft").reason
    assert "ttft" in verdict.reason


def test_a_failed_source_is_inconclusive_everywhere() -> None:
    down = FakeSource(error=MetricSourceError("prometheus unreachable"))
    verdict = analyze_step(down, POLICY, window_s=60)
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert all("unreachable" in c.reason for c in verdict.checks)
    assert not down.is_online()


def test_one_failing_check_fails_the_step() -> None:
    source = healthy_source().counts("errors", "canary", successes=380, failures=20)
    verdict = analyze_step(source, POLICY, window_s=60)
    assert verdict.outcome == Outcome.FAIL
    assert verdict.check("error_rate").outcome == Outcome.FAIL
    assert verdict.reason.startswith("error_rate:")


def test_drift_enabled_without_a_result_is_inconclusive() -> None:
    verdict = analyze_step(healthy_source(), CanaryPolicy(), window_s=60)
    assert verdict.check("drift").outcome == Outcome.INCONCLUSIVE
    ok = DriftResult(drift_share=0.0, dataset_drift=False, columns=(), n_reference=500,
                     n_current=500)  # fmt: skip
    verdict = analyze_step(healthy_source(), CanaryPolicy(), window_s=60, drift=ok)
    assert verdict.outcome == Outcome.PASS


def test_aggregate_of_nothing_is_inconclusive() -> None:
    assert aggregate([], 60).outcome == Outcome.INCONCLUSIVE


@pytest.mark.parametrize(
    ("outcome", "failures", "elapsed", "kind"),
    [
        (Outcome.PASS, 0, 10, ActionKind.ADVANCE),
        (Outcome.FAIL, 0, 10, ActionKind.ROLLBACK),  # failure_threshold 1
        (Outcome.INCONCLUSIVE, 0, 10, ActionKind.EXTEND),
        (Outcome.INCONCLUSIVE, 0, 600, ActionKind.ROLLBACK),  # past the deadline
    ],
)
def test_next_action(outcome: Outcome, failures: int, elapsed: float, kind: ActionKind) -> None:
    step = aggregate([CheckResult(name="x", outcome=outcome, reason="r")], 60)
    action = next_action(step, CanaryPolicy(), failures_so_far=failures, step_elapsed_s=elapsed)
    assert action.kind == kind


def test_failure_threshold_allows_retries() -> None:
    policy = CanaryPolicy(failure_threshold=2)
    step = aggregate([CheckResult(name="x", outcome=Outcome.FAIL, reason="slow")], 60)
    first = next_action(step, policy, failures_so_far=0, step_elapsed_s=1)
    second = next_action(step, policy, failures_so_far=first.failures, step_elapsed_s=1)
    assert (first.kind, first.failures) == (ActionKind.RETRY, 1)
    assert (second.kind, second.failures) == (ActionKind.ROLLBACK, 2)
    assert "slow" in second.reason


def test_hard_failures() -> None:
    hard = CanaryPolicy().hard
    assert detect_hard_failure(CanaryHealth(requests=100, failures=3), hard) is None
    assert detect_hard_failure(CanaryHealth(requests=100, failures=20), hard) is None  # 20 %
    burst = detect_hard_failure(CanaryHealth(requests=20, failures=12), hard)
    assert burst is not None
    assert "5xx burst: 12/20" in burst.reasons[0]
    assert detect_hard_failure(CanaryHealth(requests=4, failures=4), hard) is None  # too few
    sick = detect_hard_failure(CanaryHealth(healthy=False, restarts=3), hard)
    assert sick is not None
    assert len(sick.reasons) == 2
    sample = Sample("errors", "canary", 30, "prometheus", successes=2, failures=9)
    assert detect_hard_failure(health_from_errors(sample), hard) is not None


def test_policy_defaults_and_bonferroni() -> None:
    policy = CanaryPolicy()
    assert policy.statistical_checks() == ["latency", "ttft", "error_rate", "quality"]
    assert policy.check_alpha() == pytest.approx(0.0125)
    two = CanaryPolicy(ttft={"enabled": False}, quality={"enabled": False})
    assert two.check_alpha() == pytest.approx(0.025)
    assert CanaryPolicy(quality={"min_samples": 500}).step_min_samples() == 500
    with pytest.raises(ValidationError):
        CanaryPolicy(latency={"max_ratio": 0.9})
    assert "False-alarm rate" in CanaryPolicy.model_fields["alpha"].description  # type: ignore[operator]


@pytest.mark.parametrize(("weight", "total"), [(10, 3276), (25, 1301), (50, 649), (90, 3276)])
def test_samples_needed(weight: int, total: int) -> None:
    assert samples_needed(CanaryPolicy(), weight) == total


def test_samples_needed_is_the_smallest_sufficient_total() -> None:
    from scipy import stats as sps  # type: ignore[import-untyped]

    m, p = 300, 0.1
    n = samples_needed(CanaryPolicy(), 10)
    both = sps.binom.cdf(n - m, n, p) - sps.binom.cdf(m - 1, n, p)
    before = sps.binom.cdf(n - 1 - m, n - 1, p) - sps.binom.cdf(m - 1, n - 1, p)
    assert before < 0.95 <= both
    with pytest.raises(ValueError, match="strictly between"):
        samples_needed(CanaryPolicy(), 100)


def test_inconclusive_helper_keeps_counts() -> None:
    res = inconclusive("latency", "why", 3, 4)
    assert (res.outcome, res.n_canary, res.n_stable) == (Outcome.INCONCLUSIVE, 3, 4)


def test_a_latency_only_failure_is_rechecked_once() -> None:
    fail = CheckResult(name="latency", outcome=Outcome.FAIL, reason="p95 2x")
    ttft = CheckResult(name="ttft", outcome=Outcome.FAIL, reason="p95 2x")
    step = aggregate([fail, ttft, CheckResult(name="quality", outcome=Outcome.PASS, reason="")],
                     60)  # fmt: skip
    first = next_action(step, CanaryPolicy(), failures_so_far=0, step_elapsed_s=1)
    assert (first.kind, first.failures) == (ActionKind.RECHECK, 0)
    second = next_action(step, CanaryPolicy(), failures_so_far=0, step_elapsed_s=1,
                         rechecked=True)  # fmt: skip
    assert (second.kind, second.failures) == (ActionKind.ROLLBACK, 1)
    both = aggregate([fail, CheckResult(name="quality", outcome=Outcome.FAIL, reason="")], 60)
    at_once = next_action(both, CanaryPolicy(), failures_so_far=0, step_elapsed_s=1)
    assert at_once.kind == ActionKind.ROLLBACK
