"""Fakes of the controller's ports for unit tests: scripted step loads, a clock, checks.

    clock = FakeClock()
    load = FakeStepLoad([good_canary(), slow_canary()], clock=clock, seconds_per_run=5)
    load.run(10, 400, tmp)    # one batch of a good canary; the clock moved 5 s
    load.run(25, 400, tmp)    # a slow one (and every later run too: the last profile repeats)
    load.calls                # [(10, 400), (25, 400)]

A profile is `(weight, requests) -> StepEvidence`, one batch; the builders below split
`requests` between canary and stable by `weight` for errors and quality (all traffic) and
evenly for latency, ttft and itl (the equal-concurrency paired window), with seeded random
values that differ from batch to batch (so evidence accumulates) and repeat from run to run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from infra.controller.ports import CheckReport, StepEvidence, UserImpact
from validation.analysis import CanaryHealth
from validation.drift import DriftResult
from validation.metrics.fake import FakeSource

Profile = Callable[[int, int], StepEvidence]


class FakeClock:
    """A monotonic clock that moves only when told (also usable as the controller's sleep)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeStepLoad:
    """Answers the i-th run with the i-th profile (the last one repeats); records calls."""

    def __init__(
        self,
        profiles: Sequence[Profile] | Profile,
        *,
        clock: FakeClock | None = None,
        seconds_per_run: float = 5.0,
    ) -> None:
        self.profiles = [profiles] if callable(profiles) else list(profiles)
        self.clock = clock
        self.seconds_per_run = seconds_per_run
        self.calls: list[tuple[int, int]] = []

    def run(self, weight: int, requests: int, out_dir: Path) -> StepEvidence:
        profile = self.profiles[min(len(self.calls), len(self.profiles) - 1)]
        self.calls.append((weight, requests))
        if self.clock is not None:
            self.clock.advance(self.seconds_per_run)
        return profile(weight, requests)


def canary_profile(
    *,
    latency_factor: float = 1.0,
    error_rate: float = 0.002,
    accuracy: float = 0.95,
    drift_share: float = 0.0,
    healthy: bool = True,
    max_requests: int | None = None,
    seed: int = 0,
    users: float = 0.0,
) -> Profile:
    """A profile whose canary differs from the stable as given (stable: 50 ms, 0.2%, 95%).

    `users`: share of the canary's requests that came from real users (the blast radius).
    """
    batches: dict[int, int] = {}

    def profile(weight: int, requests: int) -> StepEvidence:
        total = min(requests, max_requests) if max_requests is not None else requests
        n_canary = total * weight // 100
        n_stable = total - n_canary
        batch = batches[weight] = batches.get(weight, -1) + 1
        rng = np.random.default_rng([seed, weight, batch])
        source = FakeSource()
        for variant, n, factor, err, acc in (
            ("canary", n_canary, latency_factor, error_rate, accuracy),
            ("stable", n_stable, 1.0, 0.002, 0.95),
        ):
            latency = rng.lognormal(np.log(50.0 * factor), 0.3, total // 2)
            failures = int(rng.binomial(n, err))
            right = int(rng.binomial(n, acc))
            source.values("latency", variant, latency).values("ttft", variant, latency / 5)
            source.values("itl", variant, latency / 10)
            source.counts("errors", variant, successes=n - failures, failures=failures)
            source.counts("quality", variant, successes=right, failures=n - right)
        drift = DriftResult(drift_share=drift_share, dataset_drift=drift_share >= 0.5,
                            columns=(), n_reference=500, n_current=n_canary)  # fmt: skip
        health = CanaryHealth(healthy=healthy, requests=n_canary,
                              failures=round(n_canary * error_rate))  # fmt: skip
        answered = round(n_canary * users)
        impact = UserImpact(answered=answered, failed=round(answered * error_rate),
                            wrong=round(answered * (1 - accuracy))) if users else None  # fmt: skip
        return StepEvidence(source=source, health=health, window_s=60.0, drift=drift,
                            users=impact)  # fmt: skip

    return profile


def good_canary() -> Profile:
    return canary_profile()


def slow_canary(factor: float = 2.0) -> Profile:
    return canary_profile(latency_factor=factor)


def erroring_canary(rate: float = 0.1) -> Profile:
    """Fails 10% of requests: significant, but under the hard 5xx-burst rate (50%)."""
    return canary_profile(error_rate=rate)


def low_quality_canary(accuracy: float = 0.6) -> Profile:
    return canary_profile(accuracy=accuracy)


def too_few_samples(n: int = 2) -> Profile:
    """Never more than `n` requests in a run: the checks stay inconclusive for a long time."""
    return canary_profile(max_requests=n)


def no_traffic() -> Profile:
    """Batches that carry no traffic at all (nobody sends, the load generator is idle)."""
    return canary_profile(max_requests=0)


def crashing_canary() -> Profile:
    """The canary reports unhealthy: a hard failure."""
    return canary_profile(healthy=False)


class FakeCheck:
    """A CandidateCheck that answers `reasons` (empty: passed), or raises `error` (a check
    that cannot run, e.g. its evaluation file is gone); records the dirs it saw."""

    def __init__(
        self,
        reasons: Sequence[str] = (),
        metrics: dict[str, float] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.report = CheckReport(tuple(reasons), dict(metrics or {"quality.accuracy": 0.95}))
        self.error = error
        self.calls: list[tuple[Path, Path | None]] = []

    def check(self, model_dir: Path, champion_dir: Path | None) -> CheckReport:
        self.calls.append((model_dir, champion_dir))
        if self.error is not None:
            raise self.error
        return self.report


class FakeImages:
    """An ImageBuilder that builds nothing: the tag names the model dir; `error` is raised
    instead (a build that fails) when given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.built: list[Path] = []
        self.error = error

    def build(self, model_dir: Path) -> str:
        self.built.append(model_dir)
        if self.error is not None:
            raise self.error
        return f"canaryflow/serving:fake-{model_dir.name}"
