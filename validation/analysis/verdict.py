"""A canary step's sequential analysis, its verdict, and the hard failures that cannot wait.

    analysis = StepAnalysis(policy, n_steps=3)
    added = analysis.update(evidence.source, evidence.window_s, evidence.drift, look)
    verdict = analysis.verdict(look)   # after every batch
    verdict.outcome     # fail: some check is confidently beyond its fail margin
                        # pass: every enabled check confidently within its pass margin
                        # inconclusive: keep loading (or roll back at the deadline)
    verdict.table()     # one row per check (per quantile for latency checks)

    hard = detect_hard_failure(CanaryHealth(healthy=True, restarts=0,
                                            requests=40, failures=31), policy.hard)
    hard.reasons if hard else None      # roll back now, without waiting for the step

`update` returns how many observations the batch added over all checks: 0 means the batch
carried no traffic at all (the loop pauses, never passes).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from validation.analysis.checks import (
    CheckResult,
    DriftState,
    Look,
    Outcome,
    QualityState,
    RateState,
    worst,
)
from validation.analysis.latency import LatencyState
from validation.analysis.policy import CanaryPolicy, HardFailurePolicy
from validation.drift import DriftResult
from validation.metrics.base import Metric, MetricSource, Sample

CANARY, STABLE = "canary", "stable"
_LATENCY = {"latency": Metric.LATENCY, "ttft": Metric.TTFT, "itl": Metric.ITL}


class StepVerdict(BaseModel):
    """The verdict of one canary step at one look, with every check's evidence."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    checks: tuple[CheckResult, ...]
    requests: int = 0
    elapsed_s: float = 0.0
    canary_weight: float | None = None

    @property
    def reason(self) -> str:
        relevant = [c for c in self.checks if c.outcome == self.outcome] or list(self.checks)
        return "; ".join(f"{c.name}: {c.reason}" for c in relevant)

    @property
    def needs(self) -> str:
        """What the undecided checks would still need (empty when none are undecided)."""
        return "; ".join(
            f"{c.name}: {c.needs or c.reason}"
            for c in self.checks
            if c.outcome == Outcome.INCONCLUSIVE
        )

    def check(self, name: str) -> CheckResult:
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(f"no check named {name!r} in this verdict")

    def table(self) -> list[dict[str, Any]]:
        """Rows (check, outcome, estimate, CS, decided at, needs, test, reason) for a report."""
        return [
            {
                "check": c.name,
                "outcome": c.outcome.value,
                "canary": c.canary_value,
                "stable": c.stable_value,
                "effect": c.effect,
                "ci": None if c.ci_low is None else f"[{c.ci_low:.4g}, {c.ci_high:.4g}]",
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "increase_ms": None
                if c.diff_low is None
                else f"[{c.diff_low:.4g}, {c.diff_high:.4g}]",
                "windows": None
                if c.windows is None
                else f"{c.windows}: [{c.window_low:.4g}, {c.window_high:.4g}]",
                "alpha": c.alpha,
                "n_canary": c.n_canary,
                "n_stable": c.n_stable,
                "decided_at_requests": c.decided_at_requests,
                "decided_at_s": c.decided_at_s,
                "needs": c.needs,
                "test": c.test,
                "reason": c.reason,
            }
            for c in self.checks
        ]


def aggregate(
    checks: list[CheckResult], look: Look, canary_weight: float | None = None
) -> StepVerdict:
    """Any fail -> fail; else any inconclusive (or no checks at all) -> inconclusive."""
    return StepVerdict(outcome=worst([c.outcome for c in checks]), checks=tuple(checks),
                       requests=look.requests, elapsed_s=look.elapsed_s,
                       canary_weight=canary_weight)  # fmt: skip


class StepAnalysis:
    """The sequential state of every enabled check over one step."""

    def __init__(
        self,
        policy: CanaryPolicy,
        n_steps: int,
        canary_weight: float | None = None,
        *,
        carry: StepAnalysis | None = None,
    ) -> None:
        """`carry`: the previous step's analysis; with policy.carry_paired its latency and
        quality evidence (the equal-conditions window) continues into this step."""
        alpha, m = policy.look_alpha(n_steps), policy.min_samples
        self.alpha, self.canary_weight = alpha, canary_weight
        self.latency: list[LatencyState]
        self.quality: QualityState | None
        if carry is not None and policy.carry_paired:
            self.latency, self.quality = carry.latency, carry.quality
            for state in self.latency:
                state.new_step()
            if self.quality is not None:
                self.quality.new_step()
        else:
            whole = policy.rollout_alpha() if policy.carry_paired else alpha
            self.latency = [
                LatencyState(name, metric, getattr(policy, name), whole, m)
                for name, metric in _LATENCY.items()
                if getattr(policy, name).enabled
            ]
            on = policy.quality.enabled
            self.quality = QualityState(policy.quality, whole, m) if on else None
        self.rates = RateState(policy.error_rate, alpha, m) if policy.error_rate.enabled else None
        self.drift = DriftState(policy.drift, m) if policy.drift.enabled else None

    def update(
        self, source: MetricSource, window_s: float, drift: DriftResult | None, look: Look
    ) -> int:
        """Add one batch's evidence; returns the observations it added (0: no traffic)."""
        added = sum(state.add(source, window_s) for state in self.latency)
        for other in (self.rates, self.quality):
            if other is not None:
                added += other.add(source, window_s)
        if self.drift is not None and added:
            self.drift.add(drift, look)
        return added

    def verdict(self, look: Look) -> StepVerdict:
        rows: list[CheckResult] = [row for s in self.latency for row in s.judge(look)]
        for other in (self.rates, self.quality):
            if other is not None:
                rows += other.judge(look)
        if self.drift is not None:
            rows += self.drift.judge()
        return aggregate(rows, look, self.canary_weight)


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
