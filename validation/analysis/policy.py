"""The canary policy: what each check tolerates, how sure a failure must be, how long to wait.

Every check reads the same way: a check FAILS when the canary is worse than the stable by
more than its tolerance on the point estimate AND the difference is significant at the
per-check alpha; it is INCONCLUSIVE when it has fewer than `min_samples` per variant, or
when the point estimate is beyond tolerance but not (yet) significant; otherwise it PASSES.
Absolute limits (`max_ms`, `max_rate`, `min_accuracy`) are a second line judged the same way
against a confidence bound of the canary alone.

`alpha` is the false-alarm rate of one step's verdict: it is split evenly (Bonferroni) over
the enabled statistical checks, so identical canary and stable fail a step with probability
at most `alpha` even with every tolerance at zero. Over a release of s steps the chance of a
false rollback is at most s x alpha (the tolerances make it far smaller in practice).

`samples_needed(policy, canary_weight)` sizes a step's load so both variants reach their
minimum samples with high probability under random per-request routing.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats as sps  # type: ignore[import-untyped]


class _Frozen(BaseModel):
    # inf passes every lower bound (a deadline of inf never ends): refuse it and nan.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class LatencyCheck(_Frozen):
    """A latency quantile of the canary against the stable's (bootstrap ratio test)."""

    enabled: bool = Field(True, description="Run this check.")
    quantile: float = Field(0.95, gt=0, lt=1, description="Which quantile to compare (0.95=p95).")
    max_ratio: float = Field(
        1.5, ge=1.0, description="Fail when canary/stable quantile exceeds this, significantly."
    )
    max_ms: float | None = Field(
        None, gt=0, description="Absolute limit (ms): fail when the canary's quantile is "
        "confidently above it. None: no absolute limit.",
    )  # fmt: skip
    min_samples: int | None = Field(
        None, ge=1, description="Per-variant minimum for this check; None: the policy's."
    )


class ErrorRateCheck(_Frozen):
    """The canary's failed-request rate against the stable's (one-sided Fisher exact test)."""

    enabled: bool = Field(True, description="Run this check.")
    max_increase: float = Field(
        0.01, ge=0, le=1, description="Fail when canary rate - stable rate exceeds this "
        "(0.01 = 1 point), significantly.",
    )  # fmt: skip
    max_rate: float | None = Field(
        None, ge=0, le=1, description="Absolute limit: fail when the canary's rate is "
        "confidently above it. None: no absolute limit.",
    )  # fmt: skip
    min_samples: int | None = Field(
        None, ge=1, description="Per-variant minimum for this check; None: the policy's."
    )


class QualityCheck(_Frozen):
    """Golden-prompt exact-match accuracy of the canary against the stable's."""

    enabled: bool = Field(True, description="Run this check.")
    max_drop: float = Field(
        0.10, ge=0, le=1, description="Fail when stable - canary accuracy exceeds this "
        "(0.10 = 10 points), significantly.",
    )  # fmt: skip
    min_accuracy: float | None = Field(
        None, ge=0, le=1, description="Absolute floor: fail when the canary's accuracy is "
        "confidently below it. None: no floor (the offline gate already has one).",
    )  # fmt: skip
    min_samples: int | None = Field(
        None, ge=1, description="Per-variant minimum for this check; None: the policy's."
    )


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


class EarlyLook(_Frozen):
    """A small first look at each step that can only roll back: blatant regressions
    (a broken model, a 5x slowdown) stop after tens of requests, not after the full step.

    The probe spends `alpha_share` of the step's alpha and the full analysis the rest, on a
    fresh window, so a step still fails an identical canary with probability <= alpha.
    """

    enabled: bool = Field(True, description="Run the probe before each step's full load.")
    min_samples: int = Field(50, ge=10, description="Requests per variant the probe is sized for.")
    alpha_share: float = Field(
        0.2, gt=0, lt=1, description="Share of `alpha` the probe spends (fail-only)."
    )


AnyCheck = LatencyCheck | ErrorRateCheck | QualityCheck | DriftCheck


class CanaryPolicy(_Frozen):
    """How a canary step is judged; defaults are the numbers tuned in the unit tests."""

    alpha: float = Field(
        0.05, gt=0, lt=0.5, description="False-alarm rate of one step's verdict, split evenly "
        "over the enabled statistical checks (latency, ttft, error_rate, quality).",
    )  # fmt: skip
    min_samples: int = Field(
        300, ge=10, description="Requests each variant needs in a step before a check may pass."
    )
    failure_threshold: int = Field(
        1, ge=1, description="Failed step analyses in a release that trigger rollback."
    )
    recheck_latency: bool = Field(
        True, description="A step failed by latency/ttft alone is measured once more on a "
        "fresh window of the same size before the failure counts. Latency is the one check a "
        "busy host can skew (another process on the canary's cores, a GC pause); quality, "
        "errors and drift failures count at once. A truly slower canary fails both windows.",
    )  # fmt: skip
    progress_deadline_s: float = Field(
        600.0, gt=0, description="A step still inconclusive this long after it began rolls back."
    )
    bootstrap_resamples: int = Field(
        10_000, ge=200, description="Bootstrap draws for latency tests (exact sampler: cheap)."
    )
    seed: int = Field(0, description="Seed of the bootstrap, so a verdict can be reproduced.")
    latency: LatencyCheck = Field(
        default_factory=LatencyCheck, description="p95 end-to-end latency."
    )
    ttft: LatencyCheck = Field(
        default_factory=LatencyCheck, description="p95 time to first token (streamed requests)."
    )
    error_rate: ErrorRateCheck = Field(
        default_factory=ErrorRateCheck, description="Failed requests."
    )
    quality: QualityCheck = Field(
        default_factory=QualityCheck, description="Golden-prompt accuracy."
    )
    drift: DriftCheck = Field(default_factory=DriftCheck, description="Output/prompt drift share.")
    hard: HardFailurePolicy = Field(
        default_factory=HardFailurePolicy, description="Immediate rollback triggers."
    )
    early: EarlyLook = Field(
        default_factory=EarlyLook, description="Fail-fast probe at the start of each step."
    )

    def probe(self) -> CanaryPolicy:
        """The probe's policy: its small sample, its share of alpha, no drift check (a
        drift verdict on tens of rows is noise)."""
        return self.model_copy(update={
            "alpha": self.alpha * self.early.alpha_share,
            "min_samples": self.early.min_samples,
            "drift": self.drift.model_copy(update={"enabled": False}),
        })  # fmt: skip

    def main(self) -> CanaryPolicy:
        """The full analysis's policy: what is left of alpha after the probe."""
        if not self.early.enabled:
            return self
        return self.model_copy(update={"alpha": self.alpha * (1 - self.early.alpha_share)})

    def statistical_checks(self) -> list[str]:
        """Names of the enabled checks that share `alpha`."""
        named: dict[str, AnyCheck] = {
            "latency": self.latency,
            "ttft": self.ttft,
            "error_rate": self.error_rate,
            "quality": self.quality,
        }
        return [name for name, check in named.items() if check.enabled]

    def check_alpha(self) -> float:
        """The false-alarm rate each statistical check runs at (Bonferroni)."""
        return self.alpha / max(1, len(self.statistical_checks()))

    def min_samples_for(self, check: AnyCheck) -> int:
        return check.min_samples if check.min_samples is not None else self.min_samples

    def step_min_samples(self) -> int:
        """The most per-variant samples any enabled check asks for."""
        checks: tuple[AnyCheck, ...] = (
            self.latency,
            self.ttft,
            self.error_rate,
            self.quality,
            self.drift,
        )
        return max(self.min_samples_for(c) for c in checks if c.enabled)


def samples_needed(policy: CanaryPolicy, canary_weight: float, confidence: float = 0.95) -> int:
    """Total requests a step needs so each variant gets `step_min_samples()` with `confidence`.

    Requests go to the canary with probability canary_weight/100 each (random routing; a
    deterministic weighted round robin needs at most this many). The canary count is then
    Binomial(N, w); the smallest N with P(m <= canary count <= N - m) >= confidence is found
    by exponential then binary search (that probability grows with N).
    """
    if not 0 < canary_weight < 100:
        raise ValueError(f"canary_weight must lie strictly between 0 and 100, got {canary_weight}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    m, p = policy.step_min_samples(), canary_weight / 100

    def enough(n: int) -> bool:
        both = sps.binom.cdf(n - m, n, p) - sps.binom.cdf(m - 1, n, p)
        return bool(both >= confidence)

    low = math.ceil(m / min(p, 1 - p))  # the expected-count answer, never enough on its own
    high = low
    while not enough(high):
        low, high = high, high * 2
    while low < high:
        mid = (low + high) // 2
        if enough(mid):
            high = mid
        else:
            low = mid + 1
    return high
