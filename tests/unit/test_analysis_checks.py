"""Each sequential check's three outcomes, its absolute floor, and the numbers it reports."""

from __future__ import annotations

import numpy as np
import pytest

from validation.analysis.checks import (
    DriftState,
    Look,
    Outcome,
    QualityState,
    RateState,
    worst,
)
from validation.analysis.latency import LatencyState
from validation.analysis.policy import (
    DriftCheck,
    ErrorRateCheck,
    LatencyCheck,
    QualityCheck,
)
from validation.drift import ColumnDrift, DriftResult
from validation.metrics.base import Metric, MetricSourceError
from validation.metrics.fake import FakeSource

ALPHA, LOOK = 0.01, Look(requests=1000, elapsed_s=12.0)


def lognormal(seed: int, n: int, median: float = 50.0, sigma: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(median), sigma, n)


def latency(
    canary: np.ndarray, stable: np.ndarray, cfg: LatencyCheck | None = None, windows: int = 8
) -> dict[str, Outcome]:
    """The values arrive over `windows` looks (paired windows) and are judged at the end."""
    state = LatencyState("latency", Metric.LATENCY, cfg or LatencyCheck(), ALPHA, 100)
    for c, s in zip(np.array_split(canary, windows), np.array_split(stable, windows), strict=True):
        state.add(FakeSource().values("latency", "canary", c).values("latency", "stable", s), 60)
    return {r.name: r.outcome for r in state.judge(LOOK)}


def test_one_slow_window_is_held_a_slowdown_in_every_window_fails() -> None:
    """Per-request bounds alone would fail an identical canary that was 2.5x slower in one
    paired window (its threads lost the cores for that window): the window-level bound
    holds the fail; the same factor in every window fails."""
    state = LatencyState("latency", Metric.LATENCY, LatencyCheck(quantiles=(0.5,)), ALPHA, 100)
    state.add(FakeSource().values("latency", "canary", lognormal(10, 2000) * 2.5)
              .values("latency", "stable", lognormal(20, 2000)), 60)  # fmt: skip
    (row,) = state.judge(LOOK)
    assert row.outcome == Outcome.INCONCLUSIVE, row.reason
    assert row.ci_low is not None
    assert row.ci_low > 1.5
    assert "not yet across windows" in row.reason
    assert row.windows == 1
    assert row.needs is not None
    assert "more windows" in row.needs
    slow = latency(lognormal(1, 2400) * 2, lognormal(2, 2400), LatencyCheck(quantiles=(0.5,)))
    assert slow["latency.p50"] == Outcome.FAIL


def test_beyond_what_one_window_can_make_fails_at_once_and_the_bound_can_be_off() -> None:
    """15x in one window is beyond window_max_factor (10x): it fails without more windows;
    so does 2.5x in one window with window_bound off (variants on hardware of their own)."""
    for factor, cfg in ((15.0, LatencyCheck(quantiles=(0.5,))),
                        (2.5, LatencyCheck(quantiles=(0.5,), window_bound=False))):  # fmt: skip
        state = LatencyState("latency", Metric.LATENCY, cfg, ALPHA, 100)
        state.add(FakeSource().values("latency", "canary", lognormal(10, 400) * factor)
                  .values("latency", "stable", lognormal(20, 400)), 60)  # fmt: skip
        (row,) = state.judge(LOOK)
        assert row.outcome == Outcome.FAIL, row.reason


def test_identical_canaries_with_window_noise_are_not_failed() -> None:
    """A per-window factor of log-SD 0.7 on an identical canary (the demo's 2 loaded
    cores): over 20 seeded rollouts of 12 windows none fails any quantile."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        state = LatencyState("latency", Metric.LATENCY, LatencyCheck(), ALPHA, 100)
        for w in range(12):
            factor = float(np.exp(rng.normal(0.0, 0.7)))
            state.add(FakeSource().values("latency", "canary", lognormal(seed * 99 + w, 200)
                                          * factor)
                      .values("latency", "stable", lognormal(seed * 77 + w, 200)), 60)  # fmt: skip
            rows = state.judge(LOOK)
            assert all(r.outcome != Outcome.FAIL for r in rows), [r.reason for r in rows]


def test_worst_orders_fail_inconclusive_pass() -> None:
    assert worst([Outcome.PASS, Outcome.INCONCLUSIVE, Outcome.FAIL]) == Outcome.FAIL
    assert worst([Outcome.PASS, Outcome.INCONCLUSIVE]) == Outcome.INCONCLUSIVE
    assert worst([Outcome.PASS]) == Outcome.PASS
    assert worst([]) == Outcome.INCONCLUSIVE


def test_latency_passes_identical_fails_twice_slower_per_quantile() -> None:
    same = latency(lognormal(1, 3000), lognormal(2, 3000))
    assert same == {"latency.p50": Outcome.PASS, "latency.p95": Outcome.PASS,
                    "latency.p99": Outcome.PASS}  # fmt: skip
    slow = latency(lognormal(1, 300) * 2, lognormal(2, 300))
    assert slow["latency.p50"] == Outcome.FAIL


def test_a_tail_only_regression_fails_p99_not_p50() -> None:
    stable, canary = lognormal(2, 4000), lognormal(1, 4000)
    canary[:200] *= 6  # 5 % of requests 6x slower: the body is unchanged
    np.random.default_rng(3).shuffle(canary)  # ... spread over every window
    got = latency(canary, stable)
    assert got["latency.p50"] == Outcome.PASS
    assert got["latency.p99"] == Outcome.FAIL


def test_the_absolute_floor_keeps_a_5_to_10_ms_change_from_failing() -> None:
    stable = lognormal(2, 2000, median=5, sigma=0.05)
    doubled = lognormal(1, 2000, median=10, sigma=0.05)
    assert latency(doubled, stable)["latency.p50"] != Outcome.FAIL  # 2x, but +5 ms only
    assert latency(doubled * 0.9, stable)["latency.p50"] == Outcome.PASS  # +4 ms < floor
    strict = LatencyCheck(min_increase_ms=1.0)
    assert latency(doubled, stable, strict)["latency.p50"] == Outcome.FAIL


def test_latency_undecided_says_what_it_needs_and_max_ms_fails() -> None:
    state = LatencyState("ttft", Metric.TTFT, LatencyCheck(), ALPHA, 100)
    src = FakeSource().values("ttft", "canary", lognormal(1, 50))
    src.values("ttft", "stable", lognormal(2, 50))
    state.add(src, 60)
    rows = state.judge(LOOK)
    assert all(r.outcome == Outcome.INCONCLUSIVE for r in rows)
    assert all(r.needs and "samples per variant" in r.needs for r in rows)
    capped = latency(lognormal(1, 2000), lognormal(2, 2000), LatencyCheck(max_ms=30))
    assert capped["latency.p50"] == Outcome.FAIL


def test_a_source_error_leaves_the_check_inconclusive() -> None:
    state = LatencyState("latency", Metric.LATENCY, LatencyCheck(), ALPHA, 100)
    assert state.add(FakeSource(error=MetricSourceError("prometheus down")), 60) == 0
    (row,) = state.judge(LOOK)
    assert row.outcome == Outcome.INCONCLUSIVE
    assert "prometheus down" in row.reason


def test_histograms_count_as_observations_at_their_bucket_bound() -> None:
    state = LatencyState("latency", Metric.LATENCY, LatencyCheck(quantiles=(0.5,)), ALPHA, 10)
    src = (FakeSource().histogram("latency", "canary", [10, 20, float("inf")], [10, 70, 20])
           .histogram("latency", "stable", [10, 20, float("inf")], [10, 70, 20]))  # fmt: skip
    assert state.add(src, 60) == 200
    (row,) = state.judge(LOOK)
    assert row.canary_value == row.stable_value == 20.0


def rates(fc: int, nc: int, fs: int, ns: int, cfg: ErrorRateCheck | None = None) -> Outcome:
    state = RateState(cfg or ErrorRateCheck(), ALPHA, 100)
    src = (FakeSource().counts("errors", "canary", successes=nc - fc, failures=fc)
           .counts("errors", "stable", successes=ns - fs, failures=fs))  # fmt: skip
    state.add(src, 60)
    (row,) = state.judge(LOOK)
    return row.outcome


def test_error_rate_fail_pass_inconclusive_and_max_rate() -> None:
    assert rates(60, 600, 5, 5000) == Outcome.FAIL  # 10 % vs 0.1 %
    assert rates(2, 3000, 5, 5000) == Outcome.PASS
    assert rates(2, 150, 5, 5000) == Outcome.INCONCLUSIVE  # too few to say "within 1 pt"
    assert rates(30, 3000, 25, 3000, ErrorRateCheck(max_rate=0.002)) == Outcome.FAIL


def test_quality_paired_fails_a_drop_and_passes_a_tie() -> None:
    rng = np.random.default_rng(4)
    drop = rng.choice([-1.0, 0.0, 1.0], size=800, p=[0.35, 0.6, 0.05])  # -30 points
    tie = rng.choice([-1.0, 0.0, 1.0], size=800, p=[0.05, 0.9, 0.05])
    for values, want in ((drop, Outcome.FAIL), (tie, Outcome.PASS)):
        state = QualityState(QualityCheck(), ALPHA, 100)
        state.add(FakeSource().values("quality_paired", "canary", values), 60)
        (row,) = state.judge(LOOK)
        assert row.outcome == want, row.reason
        assert row.ci_low is not None
        assert row.ci_low <= row.effect <= row.ci_high  # type: ignore[operator]
        assert "paired" in row.reason


def test_quality_without_pairs_compares_the_accuracies() -> None:
    state = QualityState(QualityCheck(min_accuracy=0.8), ALPHA, 100)
    src = (FakeSource().counts("quality", "canary", successes=300, failures=300)
           .counts("quality", "stable", successes=570, failures=30))  # fmt: skip
    state.add(src, 60)
    (row,) = state.judge(LOOK)
    assert row.outcome == Outcome.FAIL
    assert "accuracy canary 300/600" in row.reason


def test_a_pass_sticks_with_the_look_it_was_reached_at() -> None:
    state = RateState(ErrorRateCheck(), ALPHA, 100)
    ok = FakeSource().counts("errors", "canary", successes=3000, failures=0)
    ok.counts("errors", "stable", successes=3000, failures=0)
    state.add(ok, 60)
    (first,) = state.judge(Look(100, 1.0))
    state.add(ok, 60)
    (later,) = state.judge(Look(200, 2.0))
    assert first.outcome == later.outcome == Outcome.PASS
    assert (later.decided_at_requests, later.decided_at_s) == (100, 1.0)


def test_drift_takes_one_look_per_step() -> None:
    state = DriftState(DriftCheck(), 50)
    small = DriftResult(drift_share=1.0, dataset_drift=True, columns=(), n_reference=500,
                        n_current=10)  # fmt: skip
    state.add(small, LOOK)
    assert state.judge()[0].outcome == Outcome.INCONCLUSIVE
    drifted = DriftResult(drift_share=1.0, dataset_drift=True, n_reference=500, n_current=80,
                          columns=(ColumnDrift(column="prompt", method="ks", score=0.01,
                                               threshold=0.05, p_value=0.01,
                                               drifted=True),))  # fmt: skip
    state.add(drifted, LOOK)
    fresh = DriftResult(drift_share=0.0, dataset_drift=False, columns=(), n_reference=500,
                        n_current=80)  # fmt: skip
    state.add(fresh, Look(2000, 30.0))  # a second look changes nothing
    (row,) = state.judge()
    assert row.outcome == Outcome.FAIL
    assert "prompt" in row.reason
    assert row.decided_at_requests == LOOK.requests


@pytest.mark.parametrize(
    ("model", "field", "value", "words"),
    [
        (LatencyCheck, "pass_ratio", 2.0, "pass_ratio 2 is wider than max_ratio 1.5"),
        (ErrorRateCheck, "pass_increase", 0.05, "pass_increase 0.05 is wider than max_increase"),
        (QualityCheck, "pass_drop", 0.2, "pass_drop 0.2 is wider than max_drop"),
        (LatencyCheck, "quantiles", (0.5, 1.0), "quantiles must each lie in (0, 1)"),
        (LatencyCheck, "quantiles", (0.0,), "quantiles must each lie in (0, 1)"),
    ],
)
def test_contradictory_margins_and_bad_quantiles_are_refused(
    model: type, field: str, value: object, words: str
) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        model(**{field: value})
