"""StepAnalysis over batches, the verdict table, hard failures, and the policy's budget."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from validation.analysis import (
    CanaryHealth,
    CanaryPolicy,
    CheckResult,
    Look,
    Outcome,
    StepAnalysis,
    aggregate,
    detect_hard_failure,
)
from validation.analysis.checks import inconclusive
from validation.analysis.verdict import health_from_errors
from validation.drift import DriftResult
from validation.metrics.base import MetricSourceError, Sample
from validation.metrics.fake import FakeSource

POLICY = CanaryPolicy(drift={"enabled": False})


def batch(seed: int, n: int = 400, canary_errors: int = 0) -> FakeSource:
    rng = np.random.default_rng(seed)
    src = FakeSource()
    for variant in ("stable", "canary"):
        for metric, median in (("latency", 50), ("ttft", 10), ("itl", 5)):
            src.values(metric, variant, rng.lognormal(np.log(median), 0.3, n))
        failed = canary_errors if variant == "canary" else 0
        src.counts("errors", variant, successes=n - failed, failures=failed)
    src.values("quality_paired", "canary", rng.choice([-1.0, 0.0, 1.0], n, p=[0.02, 0.96, 0.02]))
    return src


def run(analysis: StepAnalysis, sources: list[FakeSource]) -> list[Outcome]:
    outcomes = []
    for i, src in enumerate(sources, 1):
        look = Look(i * 800, i * 8.0)
        analysis.update(src, 60, None, look)
        outcomes.append(analysis.verdict(look).outcome)
    return outcomes


def test_identical_batches_become_a_pass_with_every_check_in_the_table() -> None:
    analysis = StepAnalysis(POLICY, n_steps=3, canary_weight=50)
    outcomes = run(analysis, [batch(i) for i in range(20)])
    assert outcomes[0] == Outcome.INCONCLUSIVE
    assert Outcome.PASS in outcomes
    verdict = analysis.verdict(Look(16000, 160.0))
    names = [row["check"] for row in verdict.table()]
    assert names[:3] == ["latency.p50", "latency.p95", "latency.p99"]
    assert {"ttft.p99", "itl.p50", "error_rate", "quality"} <= set(names)
    assert verdict.canary_weight == 50
    row = verdict.table()[0]
    assert row["ci_low"] <= row["effect"] <= row["ci_high"]
    assert row["decided_at_requests"] is not None


def test_one_failing_check_fails_the_step_and_names_itself() -> None:
    analysis = StepAnalysis(POLICY, n_steps=3)
    outcomes = run(analysis, [batch(i, canary_errors=60) for i in range(3)])
    assert outcomes[-1] == Outcome.FAIL
    verdict = analysis.verdict(Look(2400, 24.0))
    assert verdict.check("error_rate").outcome == Outcome.FAIL
    assert verdict.reason.startswith("error_rate:")


def test_no_traffic_adds_nothing_and_a_failed_source_is_never_a_pass() -> None:
    analysis = StepAnalysis(POLICY, n_steps=1)
    assert analysis.update(FakeSource(), 60, None, Look(0, 0.0)) == 0
    down = FakeSource(error=MetricSourceError("prometheus unreachable"))
    assert analysis.update(down, 60, None, Look(0, 0.0)) == 0
    verdict = analysis.verdict(Look(0, 1.0))
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert any("unreachable" in c.reason for c in verdict.checks)
    assert "error_rate" in verdict.needs


def test_drift_enabled_without_a_result_is_inconclusive() -> None:
    analysis = StepAnalysis(CanaryPolicy(), n_steps=1)
    analysis.update(batch(1), 60, None, Look(800, 8.0))
    assert analysis.verdict(Look(800, 8.0)).check("drift").outcome == Outcome.INCONCLUSIVE
    ok = DriftResult(drift_share=0.0, dataset_drift=False, columns=(), n_reference=500,
                     n_current=500)  # fmt: skip
    analysis.update(batch(2), 60, ok, Look(1600, 16.0))
    assert analysis.verdict(Look(1600, 16.0)).check("drift").outcome == Outcome.PASS


def test_carried_evidence_needs_new_samples_in_the_next_step() -> None:
    first = StepAnalysis(POLICY, n_steps=2, canary_weight=10)
    run(first, [batch(i) for i in range(20)])
    second = StepAnalysis(POLICY, n_steps=2, canary_weight=50, carry=first)
    assert second.latency is first.latency
    look = Look(0, 0.0)
    assert second.verdict(look).check("latency.p50").outcome == Outcome.INCONCLUSIVE
    second.update(batch(99), 60, None, Look(800, 8.0))
    assert second.verdict(Look(800, 8.0)).check("latency.p50").outcome == Outcome.PASS
    fresh = StepAnalysis(POLICY.model_copy(update={"carry_paired": False}), 2, carry=first)
    assert fresh.latency is not first.latency


def test_aggregate_of_nothing_is_inconclusive() -> None:
    assert aggregate([], Look(0, 0.0)).outcome == Outcome.INCONCLUSIVE
    one = aggregate([CheckResult(name="x", outcome=Outcome.PASS, reason="")], Look(1, 1.0))
    assert one.outcome == Outcome.PASS


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


def test_one_budget_split_over_checks_and_steps() -> None:
    policy = CanaryPolicy()
    assert policy.statistical_checks() == ["latency", "ttft", "itl", "error_rate", "quality"]
    assert policy.rollout_alpha() == pytest.approx(0.01)
    assert policy.look_alpha(3) == pytest.approx(0.01 / 3)
    two = CanaryPolicy(ttft={"enabled": False}, itl={"enabled": False}, quality={"enabled": False})
    assert two.rollout_alpha() == pytest.approx(0.025)
    assert CanaryPolicy(quality={"min_samples": 500}).step_min_samples() == 500
    with pytest.raises(ValidationError):
        CanaryPolicy(latency={"max_ratio": 0.9})
    assert "whole rollout" in (CanaryPolicy.model_fields["alpha"].description or "")


def test_a_deadline_that_cannot_fit_the_minimum_evidence_is_refused() -> None:
    CanaryPolicy().check_fits([10, 25, 50])  # the defaults fit
    per_variant, canary = CanaryPolicy().min_evidence(3)
    assert 500 < per_variant < 2000  # p99's upper bound
    assert 500 < canary < 3000  # "within 1 point" of errors
    strict = {"on_inconclusive": "rollback"}  # every step must pass: the pass must fit
    CanaryPolicy(**strict, progress_deadline_s=600).check_fits([10, 25, 50])
    with pytest.raises(ValueError, match="progress_deadline_s 60 cannot fit the minimum"):
        CanaryPolicy(**strict, progress_deadline_s=60).check_fits([10, 25, 50])
    with pytest.raises(ValueError, match="raise progress_deadline_s or expected_rps"):
        CanaryPolicy(**strict, expected_rps=1).check_fits([50])
    # advancing undecided steps needs only min_samples per variant at the scarcer share
    CanaryPolicy(progress_deadline_s=60).check_fits([10, 25, 50])
    with pytest.raises(ValueError, match="min_samples 100 per variant at the 10% share"):
        CanaryPolicy(progress_deadline_s=10).check_fits([10, 25, 50])


def test_inconclusive_helper_keeps_counts() -> None:
    res = inconclusive("latency", "why", 3, 4)
    assert (res.outcome, res.n_canary, res.n_stable) == (Outcome.INCONCLUSIVE, 3, 4)
