"""Statistical properties of the step verdict, measured on seeded simulated steps.

A simulated step: latency and TTFT lognormal (median 50 ms / 10 ms, sigma 0.5), error
rate 0.1 %, golden accuracy 90 % for the stable; the canary the same unless a scenario
degrades it. Sizes are the default policy's minimum (300 per variant, the worst case for
power: at weight 10 the stable has ~9x more). Measured when written (seeded, so the same
on every run): false alarm 0.0 with the default tolerances and 0.03 with every tolerance
at zero (alpha 0.05; Bonferroni and Fisher's exactness make it conservative); power 1.00
(2x slower p95), 0.975 (5 % errors vs 0.1 %), 1.00 (-20 points of accuracy). Over 1000-3000
runs: 0.0, 0.023, 1.00, 0.984, 0.998.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.analysis import CanaryPolicy, Outcome, analyze_step
from validation.metrics.fake import FakeSource

DEFAULT = CanaryPolicy(drift={"enabled": False})
MAIN = DEFAULT.main()  # what a step's full analysis runs at (the probe spent the rest of alpha)
PROBE = DEFAULT.probe()
N = DEFAULT.min_samples
STRICT = CanaryPolicy(  # every tolerance at zero: only significance decides
    drift={"enabled": False},
    latency={"max_ratio": 1.0},
    ttft={"max_ratio": 1.0},
    error_rate={"max_increase": 0.0},
    quality={"max_drop": 0.0},
    bootstrap_resamples=2_000,
)


def simulated_step(
    rng: np.random.Generator,
    n_canary: int = N,
    n_stable: int = N,
    *,
    slower: float = 1.0,
    error_rate: float = 0.001,
    accuracy: float = 0.9,
) -> FakeSource:
    src = FakeSource()
    variants = (
        ("stable", n_stable, 1.0, 0.001, 0.9),
        ("canary", n_canary, slower, error_rate, accuracy),
    )
    for variant, n, scale, err, acc in variants:
        src.values("latency", variant, rng.lognormal(np.log(50), 0.5, n) * scale)
        src.values("ttft", variant, rng.lognormal(np.log(10), 0.5, n) * scale)
        failed = int(rng.binomial(n, err))
        src.counts("errors", variant, successes=n - failed, failures=failed)
        right = int(rng.binomial(n, acc))
        src.counts("quality", variant, successes=right, failures=n - right)
    return src


def fail_rate(policy: CanaryPolicy, runs: int, seed: int, n: int = N, **scenario: float) -> float:
    rng = np.random.default_rng(seed)
    fails = sum(
        analyze_step(simulated_step(rng, n, n, **scenario), policy, 60).outcome == Outcome.FAIL  # type: ignore[arg-type]
        for _ in range(runs)
    )
    return fails / runs


def test_identical_variants_rarely_fail_with_default_tolerances() -> None:
    assert fail_rate(DEFAULT, 100, seed=1) <= DEFAULT.alpha


def test_false_alarm_rate_is_at_most_alpha_even_without_tolerances() -> None:
    # 400 runs: sd of the measured rate ~0.011 at 0.05, so +0.03 is ~2.8 sd of slack
    assert fail_rate(STRICT, 400, seed=2) <= STRICT.alpha + 0.03


def test_power_two_times_slower() -> None:
    assert fail_rate(MAIN, 150, seed=3, slower=2.0) >= 0.95


def test_power_five_percent_errors() -> None:
    assert fail_rate(MAIN, 200, seed=4, error_rate=0.05) >= 0.95


def test_power_twenty_points_lower_quality() -> None:
    assert fail_rate(MAIN, 150, seed=5, accuracy=0.7) >= 0.95


def test_the_probe_rarely_fails_identical_variants_even_without_tolerances() -> None:
    assert fail_rate(STRICT.probe(), 400, seed=6, n=PROBE.min_samples) <= PROBE.alpha + 0.02


def test_the_probe_catches_a_broken_model_and_a_5x_slowdown() -> None:
    n = PROBE.min_samples
    assert fail_rate(PROBE, 100, seed=7, n=n, accuracy=0.1) >= 0.95
    assert fail_rate(PROBE, 100, seed=8, n=n, slower=5.0) >= 0.95


@settings(max_examples=40, deadline=None)
@given(
    n_canary=st.integers(1, N - 1),
    n_stable=st.integers(1, 5 * N),
    slower=st.sampled_from([0.5, 1.0, 10.0]),
    error_rate=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_too_few_canary_samples_is_never_a_pass(
    n_canary: int, n_stable: int, slower: float, error_rate: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    source = simulated_step(rng, n_canary, n_stable, slower=slower, error_rate=error_rate)
    verdict = analyze_step(source, DEFAULT, 60)
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert all("not enough samples" in c.reason for c in verdict.checks)
