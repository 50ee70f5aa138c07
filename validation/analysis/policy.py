"""The canary policy: what each check tolerates, how sure a decision must be, how long to wait.

Every statistical check keeps an anytime-valid confidence sequence (sequential.py) of the
canary's effect (canary - stable, or canary / stable) over a step, looked at after every
batch of `batch_requests` requests:

- it FAILS as soon as the whole confidence sequence lies beyond the fail margin (for
  latency: the ratio beyond `max_ratio` AND the absolute increase beyond `min_increase_ms`,
  so a 5 -> 10 ms change need not fail);
- it PASSES as soon as the whole sequence lies within the pass margin (`pass_ratio`,
  `pass_increase`, `pass_drop`; unset = the fail margin) and the step has at least
  `min_samples` per variant;
- otherwise it is INCONCLUSIVE. At the progress deadline a step whose checks are all
  passed or inconclusive, each with `min_samples`, advances (`on_inconclusive: advance`,
  the default: no harm was shown, and the record says what each check would still need to
  pass) or rolls back (`rollback`: only confident passes advance). Too little evidence or
  no traffic rolls back either way: never a pass.

One error budget for the whole rollout: `alpha` bounds the chance that an identical canary
is rolled back over all steps and all looks together. It is split evenly over the enabled
statistical checks (union bound); inside a latency check over its quantiles and the two
variants. Evidence from the equal-concurrency paired window (latency, ttft, itl,
quality_paired) carries over the steps in one confidence sequence per check
(`carry_paired`, `rollout_alpha`); error_rate reads all traffic, whose mix the weight
changes, so it starts afresh at each step with its budget split over the steps
(`look_alpha`). Each step needs `min_samples` of its own before anything passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from validation.analysis.sequential import ERROR_PRIOR, plausible_counts, rate_cs


class _Frozen(BaseModel):
    # inf passes every lower bound (a deadline of inf never ends): refuse it and nan.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _pass_within_fail(check: BaseModel, pass_field: str, fail_field: str) -> None:
    """Refuse a pass margin wider than the fail margin: a canary could pass and fail at once."""
    passing, failing = getattr(check, pass_field), getattr(check, fail_field)
    if passing is not None and passing > failing:
        raise ValueError(
            f"{pass_field} {passing:g} is wider than {fail_field} {failing:g}: a canary could "
            f"pass and fail at once; give {pass_field} <= {fail_field} (or leave it unset)"
        )


class LatencyCheck(_Frozen):
    """Quantiles of the canary against the stable's (confidence sequences on each)."""

    enabled: bool = Field(True, description="Run this check.")
    quantiles: tuple[float, ...] = Field(
        (0.5, 0.95, 0.99), min_length=1, description="Quantiles compared at once (each in (0, 1))."
    )
    max_ratio: float = Field(
        1.5, ge=1.0, description="Fail when canary/stable of a quantile is confidently above this "
        "(and the increase confidently above min_increase_ms).",
    )  # fmt: skip
    pass_ratio: float | None = Field(
        None, ge=1.0, description="Pass when every quantile's ratio is confidently at or below "
        "this (or its increase at or below min_increase_ms); None: max_ratio.",
    )  # fmt: skip
    min_increase_ms: float = Field(
        5.0, ge=0, description="Absolute floor (ms): an increase below it never fails, "
        "whatever the ratio.",
    )  # fmt: skip
    max_ms: float | None = Field(
        None, gt=0, description="Absolute limit (ms): fail when a canary quantile is "
        "confidently above it. None: no absolute limit.",
    )  # fmt: skip
    min_samples: int | None = Field(
        None, ge=1, description="Per-variant minimum for this check; None: the policy's."
    )
    window_bound: bool = Field(
        True, description="A fail also needs the window-level bound (one canary/stable ratio "
        "per paired window, anytime-valid t confidence sequence) beyond max_ratio, so that "
        "one variant slowed for a whole window by shared cores is not taken for the "
        "canary's slowdown (a fail then needs 5+ windows). False: request-level bounds "
        "alone, faster, for variants on hardware of their own.",
    )  # fmt: skip
    window_max_factor: float = Field(
        10.0, gt=1.0, description="A factor the conditions of one window cannot make alone "
        "(identical models on 2 loaded cores: 0.33-3.16, log-SD 0.7, so beyond 10x about once "
        "in 2000 windows): a ratio confidently beyond it and max_ratio request by request "
        "fails without waiting for windows, so a blatant slowdown stops in a batch or two.",
    )  # fmt: skip

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        bad = [q for q in v if not 0 < q < 1]
        if bad:
            raise ValueError(
                f"quantiles must each lie in (0, 1), e.g. [0.5, 0.95, 0.99]; got {bad}"
            )
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _margins(self) -> LatencyCheck:
        _pass_within_fail(self, "pass_ratio", "max_ratio")
        return self

    @property
    def pass_limit(self) -> float:
        return self.max_ratio if self.pass_ratio is None else self.pass_ratio


class ErrorRateCheck(_Frozen):
    """The canary's failed-request rate against the stable's, on all traffic."""

    enabled: bool = Field(True, description="Run this check.")
    max_increase: float = Field(
        0.01, ge=0, le=1, description="Fail when canary rate - stable rate is confidently above "
        "this (0.01 = 1 point).",
    )  # fmt: skip
    pass_increase: float | None = Field(
        None, ge=0, le=1, description="Pass when the increase is confidently at or below this; "
        "None: max_increase.",
    )  # fmt: skip
    max_rate: float | None = Field(
        None, ge=0, le=1, description="Absolute limit: fail when the canary's rate is "
        "confidently above it. None: no absolute limit.",
    )  # fmt: skip
    min_samples: int | None = Field(
        None, ge=1, description="Per-variant minimum for this check; None: the policy's."
    )

    @model_validator(mode="after")
    def _margins(self) -> ErrorRateCheck:
        _pass_within_fail(self, "pass_increase", "max_increase")
        return self

    @property
    def pass_limit(self) -> float:
        return self.max_increase if self.pass_increase is None else self.pass_increase


class QualityCheck(_Frozen):
    """Canary - stable score: paired per evaluation row (quality_paired) when the evidence
    has pairs, else the two accuracies (quality counts)."""

    enabled: bool = Field(True, description="Run this check.")
    max_drop: float = Field(
        0.10, ge=0, le=1, description="Fail when stable - canary score is confidently above "
        "this (0.10 = 10 points).",
    )  # fmt: skip
    pass_drop: float | None = Field(
        None, ge=0, le=1, description="Pass when the drop is confidently at or below this; "
        "None: max_drop.",
    )  # fmt: skip
    min_accuracy: float | None = Field(
        None, ge=0, le=1, description="Absolute floor (unpaired counts): fail when the canary's "
        "accuracy is confidently below it. None: no floor (the offline gate already has one).",
    )  # fmt: skip
    min_samples: int | None = Field(
        None, ge=1, description="Per-variant minimum for this check; None: the policy's."
    )

    @model_validator(mode="after")
    def _margins(self) -> QualityCheck:
        _pass_within_fail(self, "pass_drop", "max_drop")
        return self

    @property
    def pass_limit(self) -> float:
        return self.max_drop if self.pass_drop is None else self.pass_drop


class DriftCheck(_Frozen):
    """Evidently drift share of the canary's traffic/outputs against the reference."""

    enabled: bool = Field(True, description="Run this check.")
    max_share: float = Field(
        0.5, gt=0, le=1, description="Fail when this share of columns (or more) drifted."
    )
    min_samples: int | None = Field(
        None, ge=1, description="Minimum current (canary) rows; None: the policy's."
    )


class HardFailurePolicy(_Frozen):
    """What rolls back at once, without waiting for the step to end."""

    window_s: float = Field(30.0, gt=0, description="Look-back window for a 5xx burst (s).")
    burst_errors: int = Field(
        5, ge=1, description="A burst needs at least this many failed canary requests ..."
    )
    burst_rate: float = Field(
        0.5, gt=0, le=1, description="... making at least this share of its requests."
    )
    max_restarts: int = Field(
        2, ge=0, description="More canary restarts than this in the step is a crash loop."
    )


AnyCheck = LatencyCheck | ErrorRateCheck | QualityCheck | DriftCheck
STATISTICAL = ("latency", "ttft", "itl", "error_rate", "quality")


class CanaryPolicy(_Frozen):
    """How a canary rollout is judged; defaults are the numbers tuned in the unit tests."""

    alpha: float = Field(
        0.05, gt=0, lt=0.5, description="Chance that an identical canary is rolled back over "
        "the whole rollout (all steps, every look), split over the enabled statistical checks "
        "(latency, ttft, itl, error_rate, quality) and the steps.",
    )  # fmt: skip
    min_samples: int = Field(
        100, ge=10, description="Samples each variant needs within a step before a check may pass."
    )
    batch_requests: int = Field(
        400, ge=1, description="Requests per look: the load sends this many, then every check "
        "is updated and may decide.",
    )  # fmt: skip
    failure_threshold: int = Field(
        1, ge=1, description="Failed checks in a release that trigger rollback; under it, the "
        "step starts its evidence afresh (a failure never counts as a pass).",
    )  # fmt: skip
    progress_deadline_s: float = Field(
        300.0, gt=0, description="A step still undecided this long after it began ends as "
        "on_inconclusive says.",
    )  # fmt: skip
    on_inconclusive: Literal["advance", "rollback"] = Field(
        "advance", description="A step still undecided at progress_deadline_s, no check "
        "failed, every undecided check holding min_samples per variant: 'advance' (each "
        "check's fail side is a test of harm whose false alarms alpha bounds; no harm was "
        "shown, so the step moves on, and the record lists each inconclusive check with "
        "what it would still need to pass) or 'rollback' (every check must pass with "
        "confidence; low traffic then rolls good canaries back). Too little evidence or "
        "no traffic always rolls back.",
    )  # fmt: skip
    expected_rps: float = Field(
        50.0, gt=0, description="Requests per second the step's load reaches; used only to "
        "refuse a deadline that cannot fit the minimum evidence of a pass at the smallest step.",
    )  # fmt: skip
    carry_paired: bool = Field(
        True, description="latency, ttft, itl and quality come from the equal-concurrency "
        "paired window, whose conditions do not change with the weight: their evidence "
        "carries from step to step (each step still needs min_samples of its own to pass, "
        "and the fail side watches throughout) at alpha / checks for the whole rollout. "
        "False: every step starts afresh at alpha / checks / steps.",
    )  # fmt: skip
    pause_s: float = Field(
        5.0, ge=0, description="Wait after a batch with no traffic at all before looking again."
    )
    latency: LatencyCheck = Field(
        default_factory=LatencyCheck, description="End-to-end latency quantiles."
    )
    ttft: LatencyCheck = Field(
        default_factory=LatencyCheck, description="Time-to-first-token quantiles (streamed)."
    )
    itl: LatencyCheck = Field(
        default_factory=lambda: LatencyCheck(min_increase_ms=2.0, quantiles=(0.5,)),
        description="Inter-token latency quantiles (streamed). Default p50 only: one mean "
        "gap per short answer makes p95/p99 undecidable in a step (an identical canary "
        "needed ~20k more samples per variant and rolled back at the deadline, e2e).",
    )
    error_rate: ErrorRateCheck = Field(
        default_factory=ErrorRateCheck, description="Failed requests, all traffic."
    )
    quality: QualityCheck = Field(
        default_factory=QualityCheck, description="Paired (or unpaired) evaluation scores."
    )
    drift: DriftCheck = Field(default_factory=DriftCheck, description="Output/prompt drift share.")
    hard: HardFailurePolicy = Field(
        default_factory=HardFailurePolicy, description="Immediate rollback triggers."
    )

    def statistical_checks(self) -> list[str]:
        """Names of the enabled checks that share `alpha`."""
        return [name for name in STATISTICAL if getattr(self, name).enabled]

    def rollout_alpha(self) -> float:
        """The error budget of one check over the whole rollout (evidence carried)."""
        return self.alpha / max(1, len(self.statistical_checks()))

    def look_alpha(self, n_steps: int) -> float:
        """The error budget of one check within one step (of `n_steps`), for evidence
        that starts afresh at each step (error_rate: all traffic, whose mix the weight
        changes)."""
        return self.rollout_alpha() / max(1, n_steps)

    def min_samples_for(self, check: AnyCheck) -> int:
        return check.min_samples if check.min_samples is not None else self.min_samples

    def step_min_samples(self) -> int:
        """The most per-variant samples any enabled check asks for."""
        checks = [getattr(self, n) for n in (*STATISTICAL, "drift")]
        return max((self.min_samples_for(c) for c in checks if c.enabled), default=0)

    def min_evidence(self, n_steps: int) -> tuple[int, int]:
        """(per-variant samples before any latency check, canary requests before the
        error_rate check) could pass at all: the confidence sequences' smallest n with a
        finite bound inside the pass margin (an identical canary, no errors)."""
        alpha = self.look_alpha(n_steps)
        whole = self.rollout_alpha() if self.carry_paired else alpha
        latency = [
            _first_n(partial(_finite_upper, p=max(c.quantiles), alpha=whole / 2 / len(c.quantiles)))
            for c in (self.latency, self.ttft, self.itl)
            if c.enabled
        ]
        errors = 0
        if self.error_rate.enabled:
            limit = self.error_rate.pass_limit
            errors = _first_n(lambda n: rate_cs(0, n, alpha / 2, ERROR_PRIOR)[1] <= limit)
        floor = self.step_min_samples()
        return max([floor, *latency]), max(floor, errors)

    def check_fits(self, steps: list[int]) -> None:
        """Raise ValueError when a step's deadline cannot fit the minimum evidence: of an
        advance (min_samples), or with on_inconclusive 'rollback' of a pass."""
        if not steps:
            return
        weight = min(min(steps), 100 - max(steps))  # the scarcer variant at its scarcest
        if self.on_inconclusive == "advance":  # a step may end undecided: min_samples fit?
            floor = self.step_min_samples()
            seconds = math.ceil(floor * 100 / weight) / self.expected_rps
            if seconds > self.progress_deadline_s:
                raise ValueError(
                    f"progress_deadline_s {self.progress_deadline_s:g} cannot fit the minimum "
                    f"evidence: min_samples {floor} per variant at the {weight}% share need "
                    f"about {seconds:.0f} s at expected_rps {self.expected_rps:g}; raise "
                    "progress_deadline_s or expected_rps, or lower min_samples"
                )
            return
        per_variant, canary = self.min_evidence(len(steps))
        # latency: the equal-concurrency window sends both variants the same number;
        # errors and the rest: all traffic, split by weight
        requests = max(2 * per_variant, math.ceil(max(canary, per_variant) * 100 / weight))
        seconds = requests / self.expected_rps
        if seconds > self.progress_deadline_s:
            raise ValueError(
                f"progress_deadline_s {self.progress_deadline_s:g} cannot fit the minimum "
                f"evidence: a pass needs about {requests} requests at the {weight}% share "
                f"({per_variant} latency samples per variant, {max(canary, per_variant)} "
                f"canary requests), about {seconds:.0f} s at expected_rps "
                f"{self.expected_rps:g}; raise progress_deadline_s or expected_rps, or widen "
                "the pass margins"
            )


_MAX_N = 10_000_000


def _finite_upper(n: int, p: float, alpha: float) -> bool:
    return plausible_counts(n, p, alpha)[1] < n


def _first_n(ok: Callable[[int], bool]) -> int:
    """Smallest n >= 1 with ok(n) (ok is monotone); _MAX_N when none below it."""
    hi = 1
    while not ok(hi):
        if hi >= _MAX_N:
            return _MAX_N
        hi *= 2
    lo = hi // 2 + 1 if hi > 1 else 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
    return hi
