"""Seeded simulation of a canary rollout, judged by the sequential design and by today's.

    world = World(latency_factor=1.5)           # the canary's p95 (every quantile) 1.5x
    new = sequential_rollout(world, CanaryPolicy(), seed=1)
    old = fixed_horizon_rollout(world, seed=1)
    new.outcome, new.requests, new.seconds, new.step   # "fail" | "pass" | "inconclusive"

The simulated traffic (both designs see the same world):
- latency, ttft, itl: lognormal (median 50 / 10 / 5 ms, sigma 0.3); the canary's scaled by
  `latency_factor`;
- errors: Bernoulli per request, stable 0.2 %, canary + `error_increase`;
- quality: per evaluation row a difficulty pi ~ Beta(9, 1) (mean 90 % right); stable right
  with pi, canary with max(0, pi - `quality_drop`), independently given the row.
The sequential design gets what the evidence side delivers: latency and quality from the
equal-concurrency paired window (each batch's requests split evenly, quality_paired =
canary - stable per row), errors from all traffic split by weight. Today's design gets
what it got: every metric split by weight (probe of 50 per variant, then 300 per variant
sized by samples_needed, Bonferroni, latency recheck), reimplemented here from its
removed code with the same tests (stats.quantile_ratio_test, Fisher exact, z-test).
Simulated seconds = requests / `rps` (plus nothing for start-up: both designs alike).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps  # type: ignore[import-untyped]

from validation.analysis import CanaryPolicy, Look, Outcome, StepAnalysis
from validation.analysis import stats as fixed
from validation.metrics.fake import FakeSource
from validation.quality import QualityScore, p_value_worse

STEPS = (10, 25, 50)
MEDIANS = {"latency": 50.0, "ttft": 10.0, "itl": 5.0}


@dataclass(frozen=True)
class World:
    latency_factor: float = 1.0
    error_increase: float = 0.0
    quality_drop: float = 0.0
    stable_errors: float = 0.002
    rps: float = 100.0
    latency_sigma: float = 0.3
    """Log-SD of one request's latency, ttft and itl (the demo's windows: 0.48-1.37)."""
    window_sd: float = 0.0
    """Log-SD of a per-batch factor on the canary's latency, ttft and itl (identical model:
    median 1): both variants answer the same prompts at once in a paired window, yet one
    is slower for the whole window. The demo's paired windows of identical models on 2
    loaded cores had per-window median canary/stable ratios 0.33-3.16 (log-SD 0.3-0.75)."""


@dataclass(frozen=True)
class Rollout:
    outcome: str  # fail (rolled back) | pass (promoted) | inconclusive (deadline)
    requests: int
    seconds: float
    step: int  # weight of the step that decided (last step for a pass)
    reason: str = ""


def _latency(
    rng: np.random.Generator, metric: str, n: int, factor: float, sigma: float = 0.3
) -> np.ndarray:
    return rng.lognormal(math.log(MEDIANS[metric] * factor), sigma, n)


def _quality_rows(rng: np.random.Generator, n: int, drop: float) -> tuple[np.ndarray, np.ndarray]:
    pi = rng.beta(9.0, 1.0, n)
    stable = (rng.random(n) < pi).astype(float)
    canary = (rng.random(n) < np.maximum(0.0, pi - drop)).astype(float)
    return canary, stable


def sequential_batch(
    rng: np.random.Generator, world: World, weight: int, requests: int
) -> FakeSource:
    """One batch as the new evidence side delivers it."""
    src, pairs = FakeSource(), requests // 2
    slower = world.latency_factor
    if world.window_sd > 0:  # drawn only then: the other scenarios keep their streams
        slower *= math.exp(rng.normal(0.0, world.window_sd))
    for variant, factor in (("canary", slower), ("stable", 1.0)):
        for metric in MEDIANS:
            src.values(metric, variant, _latency(rng, metric, pairs, factor, world.latency_sigma))
    n_c = int(rng.binomial(requests, weight / 100))
    for variant, n, rate in (("canary", n_c, world.stable_errors + world.error_increase),
                             ("stable", requests - n_c, world.stable_errors)):  # fmt: skip
        failed = int(rng.binomial(n, min(1.0, rate)))
        src.counts("errors", variant, successes=n - failed, failures=failed)
    canary, stable = _quality_rows(rng, pairs, world.quality_drop)
    src.values("quality_paired", "canary", canary - stable)
    return src


def sequential_rollout(
    world: World,
    policy: CanaryPolicy,
    seed: int,
    steps: tuple[int, ...] = STEPS,
    *,
    monitor: bool | None = None,
) -> Rollout:
    """The new loop's decisions (validation.analysis.StepAnalysis), batch by batch.

    `monitor`: an undecided step moves on to the next at its deadline instead of rolling
    back, so the fail side is watched over every look of every step (the worst case for
    a false alarm). None: as the policy's `on_inconclusive` says."""
    if monitor is None:
        monitor = policy.on_inconclusive == "advance"
    rng = np.random.default_rng(seed)
    total, batch = 0, policy.batch_requests
    deadline_batches = max(1, math.floor(policy.progress_deadline_s * world.rps / batch))
    carry: StepAnalysis | None = None
    for weight in steps:
        analysis, sent = StepAnalysis(policy, len(steps), weight, carry=carry), 0
        carry = analysis
        for _ in range(deadline_batches):
            sent += batch
            look = Look(sent, sent / world.rps)
            analysis.update(sequential_batch(rng, world, weight, batch), 60.0, None, look)
            verdict = analysis.verdict(look)
            if verdict.outcome != Outcome.INCONCLUSIVE:
                break
        total += sent
        if monitor and verdict.outcome == Outcome.INCONCLUSIVE:
            continue
        if verdict.outcome != Outcome.PASS:
            return Rollout(verdict.outcome.value, total, total / world.rps, weight,
                           verdict.reason[:200])  # fmt: skip
    return Rollout("pass", total, total / world.rps, steps[-1])


# ---- today's design (removed from validation/analysis; reimplemented as it was) ----

OLD_ALPHA, OLD_PROBE_SHARE, OLD_CHECKS = 0.05, 0.2, 4
OLD_MIN, OLD_PROBE_MIN, OLD_DEADLINE_S = 300, 50, 600.0


def samples_needed(m: int, weight: int, confidence: float = 0.95) -> int:
    """Today's sizing: smallest N with P(m <= Binomial(N, w) <= N - m) >= confidence."""
    p, n = weight / 100, math.ceil(m / min(weight / 100, 1 - weight / 100))
    while sps.binom.cdf(n - m, n, p) - sps.binom.cdf(m - 1, n, p) < confidence:
        n += max(1, n // 50)
    return n


@dataclass(frozen=True)
class Tolerances:
    """Today's thresholds (the same numbers as the new policy's fail margins)."""

    max_ratio: float = 1.5
    max_increase: float = 0.01
    max_drop: float = 0.10


@dataclass
class _Window:
    """One window's raw data for today's tests (accumulable for continuous looks)."""

    lat: dict[str, list[np.ndarray]]
    errors: list[int]  # canary failures, canary n, stable failures, stable n
    right: list[int]  # canary right, canary n, stable right, stable n


def _old_data(rng: np.random.Generator, world: World, weight: int, requests: int) -> _Window:
    n_c = int(rng.binomial(requests, weight / 100))
    n_s = requests - n_c
    lat = {m: [_latency(rng, m, n_c, world.latency_factor), _latency(rng, m, n_s, 1.0)]
           for m in ("latency", "ttft")}  # fmt: skip
    fc = int(rng.binomial(n_c, min(1.0, world.stable_errors + world.error_increase)))
    fs = int(rng.binomial(n_s, world.stable_errors))
    rc = int(np.sum(_quality_rows(rng, n_c, world.quality_drop)[0]))
    rs = int(np.sum(_quality_rows(rng, n_s, 0.0)[1]))
    return _Window(lat, [fc, n_c, fs, n_s], [rc, n_c, rs, n_s])


def _merge(a: _Window, b: _Window) -> _Window:
    lat = {m: [np.concatenate([a.lat[m][i], b.lat[m][i]]) for i in (0, 1)] for m in a.lat}
    return _Window(lat, [x + y for x, y in zip(a.errors, b.errors, strict=True)],
                   [x + y for x, y in zip(a.right, b.right, strict=True)])  # fmt: skip


def _old_window(
    rng: np.random.Generator,
    world: World,
    weight: int,
    requests: int,
    alpha: float,
    seed: int,
    tol: Tolerances = Tolerances(),
) -> tuple[str, set[str]]:
    return _old_judge(_old_data(rng, world, weight, requests), alpha, seed, tol)


def _old_judge(data: _Window, alpha: float, seed: int, tol: Tolerances) -> tuple[str, set[str]]:
    """One fixed-horizon analysis: ('pass' | 'fail' | 'inconclusive', failed checks)."""
    n_c, n_s = data.errors[1], data.errors[3]
    a = alpha / OLD_CHECKS
    failed: set[str] = set()
    unsure = False
    for metric, (c, s) in data.lat.items():
        if min(n_c, n_s) < 2:
            unsure = True
            continue
        test = fixed.quantile_ratio_test(c, s, 0.95, 1000, seed, 1 - 2 * a)
        if test.ratio > tol.max_ratio and test.p_value < a:
            failed.add(metric)
        elif test.ratio > tol.max_ratio:
            unsure = True
    fc, _, fs, _ = data.errors
    if n_c and n_s and fc / n_c - fs / n_s > tol.max_increase:
        if fixed.fisher_greater(fc, n_c, fs, n_s)[1] < a:
            failed.add("error_rate")
        else:
            unsure = True
    rc, _, rs, _ = data.right
    if n_c and n_s and rs / n_s - rc / n_c > tol.max_drop:
        p = p_value_worse(QualityScore.from_counts(rc, n_c), QualityScore.from_counts(rs, n_s))
        if p < a:
            failed.add("quality")
        else:
            unsure = True
    if failed:
        return "fail", failed
    return ("inconclusive" if unsure or min(n_c, n_s) < OLD_MIN else "pass"), failed


def fixed_horizon_rollout(
    world: World, seed: int, steps: tuple[int, ...] = STEPS, tol: Tolerances = Tolerances()
) -> Rollout:
    """Today's loop: probe (fail-only) + recheck, full window, extend x2, recheck, deadline."""
    rng, total = np.random.default_rng(seed), 0
    probe_alpha, main_alpha = OLD_ALPHA * OLD_PROBE_SHARE, OLD_ALPHA * (1 - OLD_PROBE_SHARE)
    for weight in steps:
        spent = 0

        def window(n: int, alpha: float, weight: int = weight) -> tuple[str, set[str]]:
            nonlocal spent, total
            spent, total = spent + n, total + n
            return _old_window(rng, world, weight, n, alpha, seed, tol)

        probe_n = samples_needed(OLD_PROBE_MIN, weight)
        outcome, failed = window(probe_n, probe_alpha)
        if outcome == "fail" and failed <= {"latency", "ttft"}:
            outcome, failed = window(probe_n, probe_alpha)
        if outcome == "fail":
            return Rollout("fail", total, total / world.rps, weight, f"probe: {sorted(failed)}")
        base, extends, rechecked = samples_needed(OLD_MIN, weight), 0, False
        while True:
            outcome, failed = window(base * 2**extends, main_alpha)
            if outcome == "fail" and not rechecked and failed <= {"latency", "ttft"}:
                rechecked = True
                continue
            if outcome == "fail":
                return Rollout("fail", total, total / world.rps, weight, f"{sorted(failed)}")
            if outcome == "pass":
                break
            if spent / world.rps >= OLD_DEADLINE_S:
                return Rollout("inconclusive", total, total / world.rps, weight, "deadline")
            extends += 1
    return Rollout("pass", total, total / world.rps, steps[-1])


def fixed_horizon_monitored(
    world: World,
    seed: int,
    looks: int,
    batch: int,
    tol: Tolerances = Tolerances(),
    steps: tuple[int, ...] = STEPS,
) -> bool:
    """Today's fixed-horizon test (its per-step alpha) looked at after every batch, as a
    continuously monitored dashboard would: did an A/A rollout ever fail?"""
    rng = np.random.default_rng(seed)
    for weight in steps:
        data: _Window | None = None
        for _ in range(looks):
            new = _old_data(rng, world, weight, batch)
            data = new if data is None else _merge(data, new)
            if _old_judge(data, OLD_ALPHA, seed, tol)[0] == "fail":
                return True
    return False
