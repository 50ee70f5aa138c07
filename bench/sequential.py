"""Requests and seconds to a decision: the sequential judgement vs today's, side by side.

    python -m bench --only sequential [--quick]
    python -m bench.sequential [--runs 10]          # the table alone, printed

Simulated (bench/seqsim.py has the traffic model; seeded): a 3-step rollout [10, 25, 50]
at 100 req/s, each scenario run with the same seeds through both designs:
- new: validation.analysis.StepAnalysis looked at after every batch of 400 requests
  (the loop's), latency and quality from the equal-concurrency paired window;
- today: probe (50 per variant, fail-only, 20 % of alpha) + recheck, then 300 per variant
  sized by samples_needed, Bonferroni per step, latency recheck, extend x2 to the deadline.
Two sets of tolerances: the defaults (1.5x, 1 point of errors, 10 points of quality: the
1.2x, 1.5x, +1 and -5 scenarios lie within or at them, so the right answer is to promote or
not decide) and tight ones (1.1x, 0.5 point, 2 points: every scenario is a regression to
detect). "requests" counts every request of the rollout up to its decision.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from collections.abc import Callable

from bench.common import Context, Row
from bench.seqsim import (
    Rollout,
    Tolerances,
    World,
    fixed_horizon_monitored,
    fixed_horizon_rollout,
    sequential_rollout,
)
from validation.analysis import CanaryPolicy

NAME = "sequential"
METHOD = (
    "SIMULATED seeded 3-step rollouts (bench/seqsim.py), same seeds through the sequential "
    "judgement and a reimplementation of today's probe + fixed horizon + recheck; 100 req/s"
)
SCENARIOS: dict[str, World] = {
    "A/A (identical)": World(),
    "1.2x p95": World(latency_factor=1.2),
    "1.5x p95": World(latency_factor=1.5),
    "2x p95": World(latency_factor=2.0),
    "+1 pt errors": World(error_increase=0.01),
    "+5 pt errors": World(error_increase=0.05),
    "-5 pt quality": World(quality_drop=0.05),
    "-20 pt quality": World(quality_drop=0.20),
}
DEFAULT = CanaryPolicy(drift={"enabled": False})
TIGHT = CanaryPolicy(
    drift={"enabled": False},
    latency={"max_ratio": 1.1, "min_increase_ms": 0.0},
    ttft={"max_ratio": 1.1, "min_increase_ms": 0.0},
    itl={"max_ratio": 1.1, "min_increase_ms": 0.0},
    error_rate={"max_increase": 0.005},
    quality={"max_drop": 0.02},
)
WINDOW_EFFECTS = (  # (latency_sigma, window_sd): the simulated default, then as measured
    (0.3, 0.1),
    (0.3, 0.3),
    (0.3, 0.6),
    (0.85, 0.18),
    (0.85, 0.7),  # the demo's v2 / v4-v5 releases (windows beside make test)
)
BLOCKS: dict[str, tuple[CanaryPolicy, Tolerances]] = {
    "default tolerances": (DEFAULT, Tolerances()),
    "tight tolerances": (TIGHT, Tolerances(1.1, 0.005, 0.02)),
}


def _summary(found: list[Rollout]) -> str:
    counts = Counter(r.outcome for r in found)
    verdicts = ", ".join(f"{k} {v}/{len(found)}" for k, v in sorted(counts.items()))
    req = statistics.median(r.requests for r in found)
    sec = statistics.median(r.seconds for r in found)
    steps = sorted({f"{r.step}%" for r in found})
    return f"{req:.0f} req / {sec:.0f} s ({verdicts}; at {', '.join(steps)})"


def table(runs: int, emit: Callable[[Row], None]) -> None:
    for block, (policy, tol) in BLOCKS.items():
        for label, world in SCENARIOS.items():
            new = [sequential_rollout(world, policy, seed) for seed in range(runs)]
            old = [fixed_horizon_rollout(world, seed, tol=tol) for seed in range(runs)]
            ratio = statistics.median(r.requests for r in new) / max(
                1.0, statistics.median(r.requests for r in old)
            )
            emit(Row(NAME, f"{label}, {block}", _summary(new), f"today: {_summary(old)}",
                     f"{ratio:.2f}x requests", notes="median over seeds"))  # fmt: skip
    _false_alarm(runs, emit)
    _window_effect(runs, emit)


def _per_request(policy: CanaryPolicy) -> CanaryPolicy:
    """The same policy with latency judged by request-level bounds alone (the last design)."""
    off = {name: getattr(policy, name).model_copy(update={"window_bound": False})
           for name in ("latency", "ttft", "itl")}  # fmt: skip
    return policy.model_copy(update=off)


def _window_effect(runs: int, emit: Callable[[Row], None]) -> None:
    """A window effect of the size measured in the demo, every look of every step watched
    (monitored): A/A false rollbacks and a 2x twin's detection, with the window-level bound
    (default) vs request-level bounds alone, same seeds."""
    n = 3 * runs
    alone = _per_request(DEFAULT)
    for sigma, sd in WINDOW_EFFECTS:
        world = World(latency_sigma=sigma, window_sd=sd)
        found = [sequential_rollout(world, DEFAULT, s, monitor=True) for s in range(n)]
        old = [sequential_rollout(world, alone, s, monitor=True) for s in range(n)]
        fails, old_fails = (sum(r.outcome == "fail" for r in x) for x in (found, old))
        emit(Row(NAME, f"A/A false rollback, request log-SD {sigma:g}, window effect log-SD "
                 f"{sd:g}, default tolerances",
                 f"{fails}/{n}: {_summary(found)}",
                 f"request-level bounds alone {old_fails}/{n}", goal=f"<= alpha {DEFAULT.alpha:g}",
                 met="yes" if fails / n <= DEFAULT.alpha else "**no**",
                 notes="per-batch canary latency factor exp(N(0, sd)); pairs within a batch "
                 "share it"))  # fmt: skip
        twin = World(latency_sigma=sigma, window_sd=sd, latency_factor=2.0)
        new2 = [sequential_rollout(twin, DEFAULT, s) for s in range(runs)]
        old2 = [sequential_rollout(twin, alone, s) for s in range(runs)]
        ratio = statistics.median(r.requests for r in new2) / max(
            1.0, statistics.median(r.requests for r in old2)
        )
        emit(Row(NAME, f"2x p95 twin, request log-SD {sigma:g}, window effect log-SD {sd:g}",
                 _summary(new2), f"request-level bounds alone: {_summary(old2)}",
                 f"{ratio:.2f}x requests", notes="median over seeds"))  # fmt: skip


def _false_alarm(runs: int, emit: Callable[[Row], None]) -> None:
    """A/A, every tolerance at zero, every batch looked at: false rollback over a rollout."""
    zero = {"max_ratio": 1.0, "min_increase_ms": 0.0}
    strict = CanaryPolicy(drift={"enabled": False}, latency=zero, ttft=zero, itl=zero,
                          error_rate={"max_increase": 0.0}, quality={"max_drop": 0.0},
                          progress_deadline_s=40.0)  # fmt: skip
    n = 3 * runs
    new = sum(
        sequential_rollout(World(), strict, s, monitor=True).outcome == "fail" for s in range(n)
    )
    looked = sum(fixed_horizon_monitored(World(), s, 10, 400, Tolerances(1.0, 0.0, 0.0))
                 for s in range(n))  # fmt: skip
    ran = sum(fixed_horizon_rollout(World(), s, tol=Tolerances(1.0, 0.0, 0.0)).outcome == "fail"
              for s in range(n))  # fmt: skip
    emit(Row(NAME, "A/A false rollback, zero tolerances, 3 steps x 10 looks", f"{new}/{n}",
             f"today as it ran {ran}/{n}; today's test looked at every batch {looked}/{n}",
             goal=f"<= alpha {strict.alpha:g}", met="yes" if new / n <= strict.alpha else "**no**",
             notes="one alpha for the whole rollout vs alpha per step"))  # fmt: skip


def run(ctx: Context) -> None:
    table(ctx.pick(2, 10), ctx.emit)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sequential", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="seeds per scenario")
    args = parser.parse_args()
    print("| measure | new (sequential) | today | ratio | goal | met |")
    print("|---|---|---|---|---|---|")

    def show(row: Row) -> None:
        print(f"| {row.measure} | {row.value} | {row.comparison} | {row.ratio} | {row.goal} "
              f"| {row.met} |", flush=True)  # fmt: skip

    table(args.runs, show)


if __name__ == "__main__":
    main()
