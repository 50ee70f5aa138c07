"""A canary step's verdict, what to do next, and the hard failures that cannot wait.

    verdict = analyze_step(source, policy, window_s=120, canary_weight=10, drift=drift)
    verdict.outcome          # pass | fail | inconclusive (any fail -> fail; any
                             #   inconclusive -> inconclusive; all pass -> pass)
    verdict.table()          # one row per check, for a Prefect table artifact
    action = next_action(verdict, policy, failures_so_far=0, step_elapsed_s=130)
    action.kind              # advance | extend | retry | recheck | rollback

    hard = detect_hard_failure(CanaryHealth(healthy=True, restarts=0,
                                            requests=40, failures=31), policy.hard)
    hard.reasons if hard else None      # roll back now, without waiting for the step

A source that fails or has no data makes its check inconclusive (with the error in the
reason), never a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from validation.analysis.checks import (
    CheckResult,
    Outcome,
    check_drift,
    check_error_rate,
    check_latency,
    check_quality,
    inconclusive,
    worst,
)
from validation.analysis.policy import CanaryPolicy, HardFailurePolicy
from validation.drift import DriftResult
from validation.metrics.base import Metric, MetricSource, MetricSourceError, Sample

CANARY, STABLE = "canary", "stable"


class StepVerdict(BaseModel):
    """The verdict of one canary step with every check's evidence."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    checks: tuple[CheckResult, ...]
    window_s: float
    canary_weight: float | None = None

    @property
    def reason(self) -> str:
        relevant = [c for c in self.checks if c.outcome == self.outcome] or list(self.checks)
        return "; ".join(f"{c.name}: {c.reason}" for c in relevant)

    def check(self, name: str) -> CheckResult:
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(f"no check named {name!r} in this verdict")

    def table(self) -> list[dict[str, Any]]:
        """Rows (check, outcome, values, effect, CI, p, n, test, reason) for a report."""
        return [
            {
                "check": c.name,
                "outcome": c.outcome.value,
                "canary": c.canary_value,
                "stable": c.stable_value,
                "effect": c.effect,
                "ci": None if c.ci_low is None else f"[{c.ci_low:.4g}, {c.ci_high:.4g}]",
                "p_value": c.p_value,
                "alpha": c.alpha,
                "n_canary": c.n_canary,
                "n_stable": c.n_stable,
                "test": c.test,
                "reason": c.reason,
            }
            for c in self.checks
        ]


def aggregate(
    checks: list[CheckResult], window_s: float, canary_weight: float | None = None
) -> StepVerdict:
    """Any fail -> fail; else any inconclusive (or no checks at all) -> inconclusive."""
    return StepVerdict(
        outcome=worst([c.outcome for c in checks]),
        checks=tuple(checks),
        window_s=window_s,
        canary_weight=canary_weight,
    )


Judge = Callable[[Sample, Sample, CanaryPolicy], CheckResult]
_METRIC_CHECKS: dict[str, tuple[Metric, Judge]] = {
    "latency": (Metric.LATENCY, lambda c, s, p: check_latency("latency", c, s, p.latency, p)),
    "ttft": (Metric.TTFT, lambda c, s, p: check_latency("ttft", c, s, p.ttft, p)),
    "error_rate": (Metric.ERRORS, lambda c, s, p: check_error_rate(c, s, p.error_rate, p)),
    "quality": (Metric.QUALITY, lambda c, s, p: check_quality(c, s, p.quality, p)),
}


def analyze_step(
    source: MetricSource,
    policy: CanaryPolicy,
    window_s: float,
    *,
    canary_weight: float | None = None,
    drift: DriftResult | None = None,
    variants: tuple[str, str] = (CANARY, STABLE),
) -> StepVerdict:
    """Query every enabled check's metric for (canary, stable) over the window; judge it."""
    results = [
        _metric_check(source, name, policy, window_s, variants)
        for name in policy.statistical_checks()
    ]
    if policy.drift.enabled:
        results.append(
            check_drift(drift, policy.drift, policy)
            if drift is not None
            else inconclusive("drift", "no drift result was computed for this step")
        )
    return aggregate(results, window_s, canary_weight)


def _metric_check(
    source: MetricSource,
    name: str,
    policy: CanaryPolicy,
    window_s: float,
    variants: tuple[str, str],
) -> CheckResult:
    metric, judge = _METRIC_CHECKS[name]
    try:
        canary = source.query(metric, variants[0], window_s)
        stable = source.query(metric, variants[1], window_s)
    except MetricSourceError as exc:
        return inconclusive(name, f"{type(exc).__name__}: {exc}")
    return judge(canary, stable, policy)


class ActionKind(StrEnum):
    ADVANCE = "advance"  # next weight (or promote after the last)
    EXTEND = "extend"  # keep the weight, collect more samples
    RETRY = "retry"  # failed, but under the failure threshold: analyse a fresh window
    RECHECK = "recheck"  # latency alone failed: measure it again before the failure counts
    ROLLBACK = "rollback"


class Action(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ActionKind
    reason: str
    failures: int = Field(description="Failed analyses in this release, this one included.")


LATENCY_CHECKS = frozenset({"latency", "ttft"})


def next_action(
    verdict: StepVerdict,
    policy: CanaryPolicy,
    *,
    failures_so_far: int,
    step_elapsed_s: float,
    rechecked: bool = False,
) -> Action:
    """What the controller does after a step's analysis (failure threshold, deadline).

    `rechecked`: this window is already the recheck of a latency-only failure, so a
    failure now counts whatever failed.
    """
    if verdict.outcome == Outcome.PASS:
        return Action(kind=ActionKind.ADVANCE, reason="all checks passed", failures=failures_so_far)
    if policy.recheck_latency and not rechecked and _latency_only_failure(verdict):
        return Action(kind=ActionKind.RECHECK, failures=failures_so_far,
                      reason=f"latency alone failed, measuring a fresh window before it "
                      f"counts: {verdict.reason}")  # fmt: skip
    if verdict.outcome == Outcome.FAIL:
        failures = failures_so_far + 1
        count = f"failed ({failures}/{policy.failure_threshold})"
        if failures >= policy.failure_threshold:
            return Action(kind=ActionKind.ROLLBACK, failures=failures,
                          reason=f"{count}: {verdict.reason}")  # fmt: skip
        return Action(kind=ActionKind.RETRY, failures=failures,
                      reason=f"{count}, retrying: {verdict.reason}")  # fmt: skip
    if step_elapsed_s >= policy.progress_deadline_s:
        return Action(kind=ActionKind.ROLLBACK, failures=failures_so_far,
                      reason=f"still inconclusive after {step_elapsed_s:.0f} s (deadline "
                      f"{policy.progress_deadline_s:.0f} s): {verdict.reason}")  # fmt: skip
    return Action(kind=ActionKind.EXTEND, failures=failures_so_far,
                  reason=f"inconclusive, collecting more samples: {verdict.reason}")  # fmt: skip


def _latency_only_failure(verdict: StepVerdict) -> bool:
    failed = {c.name for c in verdict.checks if c.outcome == Outcome.FAIL}
    return verdict.outcome == Outcome.FAIL and failed <= LATENCY_CHECKS


class CanaryHealth(BaseModel):
    """The canary's state over the last `HardFailurePolicy.window_s` seconds."""

    model_config = ConfigDict(frozen=True)

    healthy: bool = Field(True, description="Its health endpoint / readiness says ready.")
    restarts: int = Field(0, ge=0, description="Container/pod restarts since the step began.")
    requests: int = Field(0, ge=0, description="Requests it answered in the window.")
    failures: int = Field(0, ge=0, description="Of those, failed (5xx) in the window.")


class HardFailure(BaseModel):
    """Roll back now; `reasons` say why."""

    model_config = ConfigDict(frozen=True)

    reasons: tuple[str, ...]


def detect_hard_failure(health: CanaryHealth, policy: HardFailurePolicy) -> HardFailure | None:
    """Unhealthy, crash-looping or a 5xx burst -> HardFailure; otherwise None."""
    reasons: list[str] = []
    if not health.healthy:
        reasons.append("canary is unhealthy")
    if health.restarts > policy.max_restarts:
        reasons.append(f"canary restarted {health.restarts} times (crash loop; "
                       f"limit {policy.max_restarts})")  # fmt: skip
    rate = health.failures / health.requests if health.requests else 0.0
    if health.failures >= policy.burst_errors and rate >= policy.burst_rate:
        reasons.append(f"5xx burst: {health.failures}/{health.requests} requests failed "
                       f"({rate:.0%}) in the last {policy.window_s:g} s")  # fmt: skip
    return HardFailure(reasons=tuple(reasons)) if reasons else None


def health_from_errors(sample: Sample, healthy: bool = True, restarts: int = 0) -> CanaryHealth:
    """A CanaryHealth from an `errors` sample of the short window (e.g. Prometheus)."""
    return CanaryHealth(healthy=healthy, restarts=restarts, requests=sample.n,
                        failures=sample.failures or 0)  # fmt: skip
