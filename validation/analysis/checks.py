"""The sequential checks of one canary step: evidence accumulates batch by batch, every
look may decide, and each decision keeps the numbers it was taken on.
    state = LatencyState("latency", Metric.LATENCY, policy.latency, alpha, min_samples=100)
    # (latency.py; RateState, QualityState and DriftState here)
    state.add(evidence.source, evidence.window_s)            # after each batch
    rows = state.judge(Look(requests=800, elapsed_s=42.0))   # a CheckResult per quantile

How each decides (policy.py has the margins; sequential.py the confidence sequences):
- latency / ttft / itl, per quantile q: CS of q for each variant at alpha / (2 x #q), so
  all of them hold at every look together; ratio CS [L_c / U_s, U_c / L_s] and difference
  CS [L_c - U_s, U_c - L_s]. Fail: ratio low > max_ratio AND difference low >
  min_increase_ms AND the window-level CS of the ratio (windows.py: one log-ratio per
  paired window, so a slowdown of one window is not taken for the canary's) above
  max_ratio (or the ratio CS above window_max_factor, beyond any one window's conditions),
  or the canary's q confidently above max_ms. Pass: ratio high <= pass_ratio
  OR difference high <= min_increase_ms OR the window-level ratio high <= pass_ratio.
  Quantiles cover the tail (p99), the body (p50) and so changes of spread too.
- error_rate: CS of each variant's failure rate at alpha / 2 (beta-binomial mixture); their
  difference vs max_increase / pass_increase, and max_rate on the canary's own.
- quality: with paired rows (quality_paired, canary - stable score per row in [-1, 1]) a
  betting CS on the mean difference (sequential McNemar for 0/1 scores); without pairs,
  the accuracies' difference like error_rate. Fail: CS high < -max_drop; pass: CS low >=
  -pass_drop.
- drift: Evidently's fixed-sample tests, one look per step (the first batch with
  min_samples rows decides: looking again would inflate its false alarm).

A pass stays a pass for the step, but the fail side keeps watching until it ends; a source
error or no data leaves a check inconclusive (the error in its reason), never a pass."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict

from validation.analysis import sequential as cs
from validation.analysis.policy import DriftCheck, ErrorRateCheck, QualityCheck
from validation.drift import DriftResult
from validation.metrics.base import Metric, MetricSource, MetricSourceError, Sample


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 (not a password)
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class CheckResult(BaseModel):
    """One check's state at a look, with the numbers it was decided on."""

    model_config = ConfigDict(frozen=True)

    name: str
    outcome: Outcome
    reason: str
    test: str = ""
    n_canary: int = 0
    n_stable: int = 0
    canary_value: float | None = None
    stable_value: float | None = None
    effect: float | None = None  # estimate: ratio (latency), difference (rates, scores)
    ci_low: float | None = None  # confidence sequence of `effect` at this look
    ci_high: float | None = None
    ci_level: float | None = None
    alpha: float | None = None
    diff_low: float | None = None  # latency: CS of the increase in ms
    diff_high: float | None = None
    windows: int | None = None  # latency: paired windows behind window_low..window_high
    window_low: float | None = None  # latency: window-level CS of the ratio
    window_high: float | None = None
    decided_at_requests: int | None = None  # step requests when the outcome was reached
    decided_at_s: float | None = None  # step seconds when the outcome was reached
    needs: str | None = None  # undecided: what it would still need


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


@dataclass(frozen=True)
class Look:
    """Where the step stands when the checks are judged."""

    requests: int
    elapsed_s: float


@dataclass
class Sticky:
    """First look at which each row reached its outcome (pass sticks, fail ends the step)."""

    decided: dict[str, CheckResult] = field(default_factory=dict)

    def settle(self, row: CheckResult, look: Look) -> CheckResult:
        earlier = self.decided.get(row.name)
        if row.outcome == Outcome.FAIL or earlier is None:
            if row.outcome == Outcome.INCONCLUSIVE:
                return row
            row = row.model_copy(update={"decided_at_requests": look.requests,
                                         "decided_at_s": look.elapsed_s})  # fmt: skip
            self.decided[row.name] = row
            return row
        return earlier  # a pass stays, with the numbers it was decided on


def query_sample(source: MetricSource, metric: str, variant: str, window_s: float) -> Sample | str:
    try:
        return source.query(metric, variant, window_s)
    except MetricSourceError as exc:
        return f"{type(exc).__name__}: {exc}"


def needs_text(n: int, est: float, low: float, high: float, limits: tuple[float, float]) -> str:
    """Rough per-variant samples to decide: CS half-width shrinks about as 1/sqrt(n)."""
    gap = min(abs(est - limit) for limit in limits)
    half = (high - low) / 2
    if not math.isfinite(half):
        return f"about {max(2 * n, 100)}+ samples per variant for a finite bound"
    if gap <= 1e-12:
        return "the estimate sits on the margin: no sample size decides; widen the margins"
    more = max(0, math.ceil(n * (half / gap) ** 2) - n)
    return f"about {more} more samples per variant"


class RateState:
    """Failed-request counts of both variants over the step (error_rate)."""

    def __init__(self, cfg: ErrorRateCheck, alpha: float, min_samples: int) -> None:
        self.cfg, self.alpha = cfg, alpha
        self.min_samples = cfg.min_samples or min_samples
        self.counts = {"canary": [0, 0], "stable": [0, 0]}  # failures, n
        self.error = ""
        self.sticky = Sticky()

    def add(self, source: MetricSource, window_s: float) -> int:
        added = 0
        for variant, tally in self.counts.items():
            got = query_sample(source, Metric.ERRORS, variant, window_s)
            if isinstance(got, str) or got.failures is None or got.successes is None:
                self.error = got if isinstance(got, str) else "errors carry no counts"
                continue
            tally[0] += got.failures
            tally[1] += got.n
            added += got.n
        return added

    def judge(self, look: Look) -> list[CheckResult]:
        (fc, nc), (fs, ns) = self.counts["canary"], self.counts["stable"]
        if nc == 0 or ns == 0:
            return [inconclusive("error_rate", self.error or "no requests yet", nc, ns)]
        cfg, a = self.cfg, self.alpha / 2
        c_cs, s_cs = cs.rate_cs(fc, nc, a, cs.ERROR_PRIOR), cs.rate_cs(fs, ns, a, cs.ERROR_PRIOR)
        lo, hi = cs.difference(c_cs, s_cs)
        est = fc / nc - fs / ns
        fails = lo > cfg.max_increase or (cfg.max_rate is not None and c_cs[0] > cfg.max_rate)
        enough = min(nc, ns) >= self.min_samples
        within = hi <= cfg.pass_limit and (cfg.max_rate is None or c_cs[1] <= cfg.max_rate)
        summary = (f"error rate canary {fc}/{nc} vs stable {fs}/{ns}, increase "
                   f"{est * 100:+.2f} pt CS [{lo * 100:+.2f}, {hi * 100:+.2f}] pt")  # fmt: skip
        needs = None
        if fails:
            outcome, why = Outcome.FAIL, f"beyond {cfg.max_increase * 100:g} pt (or max_rate)"
        elif within and enough:
            outcome, why = Outcome.PASS, f"within {cfg.pass_limit * 100:g} pt"
        else:
            outcome, why = Outcome.INCONCLUSIVE, "not yet decided"
            needs = needs_text(min(nc, ns), est, lo, hi, (cfg.max_increase, cfg.pass_limit))
        row = CheckResult(
            name="error_rate", outcome=outcome, reason=f"{summary}: {why}",
            test=f"beta-binomial mixture rate CS per variant, alpha {a:.3g} each",
            n_canary=nc, n_stable=ns, canary_value=fc / nc, stable_value=fs / ns, effect=est,
            ci_low=lo, ci_high=hi, ci_level=1 - self.alpha, alpha=self.alpha, needs=needs,
        )  # fmt: skip
        return [self.sticky.settle(row, look)]


class QualityState:
    """Paired score differences (quality_paired) or unpaired accuracies (quality)."""

    def __init__(self, cfg: QualityCheck, alpha: float, min_samples: int) -> None:
        self.cfg, self.alpha = cfg, alpha
        self.min_samples = cfg.min_samples or min_samples
        self.bet = cs.BettingCS(alpha)
        self.pairs, self.pair_sum = 0, 0.0
        self.counts = {"canary": [0, 0], "stable": [0, 0]}  # right, n
        self.step_n = 0
        self.error = ""
        self.sticky = Sticky()

    def new_step(self) -> None:
        """Carry the evidence into the next step: a pass must be shown again."""
        self.step_n = 0
        self.sticky = Sticky()

    def add(self, source: MetricSource, window_s: float) -> int:
        got = query_sample(source, Metric.QUALITY_PAIRED, "canary", window_s)
        if isinstance(got, Sample) and got.values is not None:
            x = np.clip(got.values, -1.0, 1.0)
            self.bet.update((x + 1) / 2)
            self.pairs += x.size
            self.pair_sum += float(np.sum(x))
            self.step_n += x.size
            return int(x.size)
        added = 0
        for variant, tally in self.counts.items():
            one = query_sample(source, Metric.QUALITY, variant, window_s)
            if isinstance(one, str) or one.successes is None:
                self.error = one if isinstance(one, str) else "quality carries no counts"
                continue
            tally[0] += one.successes
            tally[1] += one.n
            added += one.n
        self.step_n += added // 2
        return added

    def judge(self, look: Look) -> list[CheckResult]:
        row = self._paired() if self.pairs else self._unpaired()
        return [self.sticky.settle(row, look) if row.n_canary else row]

    def _decide(
        self, est: float, lo: float, hi: float, n: int, floor: bool
    ) -> tuple[Outcome, str, str | None]:
        cfg = self.cfg
        if hi < -cfg.max_drop or floor:
            return Outcome.FAIL, f"drop beyond {cfg.max_drop * 100:g} pt (or the floor)", None
        if lo >= -cfg.pass_limit and self.step_n >= self.min_samples:
            return Outcome.PASS, f"drop within {cfg.pass_limit * 100:g} pt", None
        needs = needs_text(n, est, lo, hi, (-cfg.max_drop, -cfg.pass_limit))
        return Outcome.INCONCLUSIVE, "not yet decided", needs

    def _paired(self) -> CheckResult:
        lo_y, hi_y = self.bet.bounds()
        n = self.pairs
        lo, hi, est = 2 * lo_y - 1, 2 * hi_y - 1, self.pair_sum / n
        outcome, why, needs = self._decide(est, lo, hi, n, floor=False)
        return CheckResult(
            name="quality", outcome=outcome, needs=needs,
            reason=f"paired score difference {est * 100:+.1f} pt over {n} rows, CS "
            f"[{lo * 100:+.1f}, {hi * 100:+.1f}] pt: {why}",
            test=f"betting CS on the paired mean (Waudby-Smith & Ramdas), alpha {self.alpha:.3g}",
            n_canary=n, n_stable=n, effect=est, ci_low=lo, ci_high=hi,
            ci_level=1 - self.alpha, alpha=self.alpha,
        )  # fmt: skip

    def _unpaired(self) -> CheckResult:
        (rc, nc), (rs, ns) = self.counts["canary"], self.counts["stable"]
        if nc == 0 or ns == 0:
            return inconclusive("quality", self.error or "no scored rows yet", nc, ns)
        a = self.alpha / 2
        c_cs, s_cs = cs.rate_cs(rc, nc, a), cs.rate_cs(rs, ns, a)
        lo, hi = cs.difference(c_cs, s_cs)
        est = rc / nc - rs / ns
        floor = self.cfg.min_accuracy is not None and c_cs[1] < self.cfg.min_accuracy
        outcome, why, needs = self._decide(est, lo, hi, min(nc, ns), floor)
        return CheckResult(
            name="quality", outcome=outcome, needs=needs,
            reason=f"accuracy canary {rc}/{nc} vs stable {rs}/{ns}, difference "
            f"{est * 100:+.1f} pt CS [{lo * 100:+.1f}, {hi * 100:+.1f}] pt: {why}",
            test=f"beta-binomial mixture rate CS per variant (unpaired), alpha {a:.3g} each",
            n_canary=nc, n_stable=ns, canary_value=rc / nc, stable_value=rs / ns, effect=est,
            ci_low=lo, ci_high=hi, ci_level=1 - self.alpha, alpha=self.alpha,
        )  # fmt: skip


class DriftState:
    """One look per step: the first batch's drift result with enough rows decides."""

    def __init__(self, cfg: DriftCheck, min_samples: int) -> None:
        self.cfg, self.need = cfg, cfg.min_samples or min_samples
        self.result: CheckResult | None = None
        self.last = "no drift result was computed yet"

    def add(self, drift: DriftResult | None, look: Look) -> None:
        if self.result is not None:
            return
        if drift is None:
            return
        if drift.n_current < self.need or drift.n_reference < self.need:
            self.last = (f"not enough rows for drift: current {drift.n_current}, reference "
                         f"{drift.n_reference}, need >= {self.need} each")  # fmt: skip
            return
        drifted = [c.column for c in drift.columns if c.drifted]
        failed = drift.drift_share >= self.cfg.max_share
        self.result = CheckResult(
            name="drift", outcome=Outcome.FAIL if failed else Outcome.PASS,
            reason=f"drift share {drift.drift_share:.2f} {'at or above' if failed else 'below'} "
            f"the limit {self.cfg.max_share:.2f} (drifted: {', '.join(drifted) or 'none'})",
            test="Evidently DataDriftPreset, one look per step",
            n_canary=drift.n_current, n_stable=drift.n_reference, effect=drift.drift_share,
            decided_at_requests=look.requests, decided_at_s=look.elapsed_s,
        )  # fmt: skip

    def judge(self) -> list[CheckResult]:
        return [self.result or inconclusive("drift", self.last)]
