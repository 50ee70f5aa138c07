"""Time to roll back a bad canary and to promote a good one, default policy, vs Flagger.

    python -m bench --only rollback [--quick]

Real: the CanaryController (infra/controller/loop.py) with the default CanaryPolicy and
steps [10, 25, 50], its analysis (validation/analysis) and a real Evidently drift check of
the canary's answers per step; the target's promote/rollback time is the one the
transitions benchmark measured on real containers in this run.
Simulated: the request stream. Each step's load is a seeded sample (infra/controller/fake
canary_profile: stable 50 ms lognormal, 0.2 % errors, 95 % exact match; the canary as the
scenario says) whose duration is requests ÷ the RPS the router benchmark measured in this
run (to real vLLM, 50 % split), plus Locust's start-up per step as the loadgen benchmark
measured it. Time = from the first request the canary receives to the end state.

Flagger's documented example (docs.flagger.app, deployment strategies: interval 1m,
threshold 10, maxWeight 50, stepWeight 2) gives interval × threshold = 10 min to roll back
and interval × maxWeight / stepWeight = 25 min to promote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]

from bench.common import Context, Row, median, num, spread
from infra.controller.fake import FakeClock, canary_profile
from infra.controller.loop import CanaryController
from infra.controller.ports import StepEvidence
from infra.controller.record import CanaryResult
from infra.spec import CanaryStrategy
from infra.targets.base import Variant
from infra.targets.fake import FakeTarget
from tests.fixtures.models import trained
from validation.drift import detect_drift, frame_from_examples
from validation.golden import read_jsonl

NAME = "rollback"
DOCUMENTED_RPS = 150.0
FLAGGER_INTERVAL_S, FLAGGER_THRESHOLD, FLAGGER_MAX, FLAGGER_STEP = 60, 10, 50, 2


@dataclass(frozen=True)
class Scenario:
    """How the canary differs from the stable (50 ms, 0.2 % errors, 95 % exact match)."""

    latency_factor: float = 1.0
    error_rate: float = 0.002
    accuracy: float = 0.95


SCENARIOS: dict[str, Scenario] = {
    "good canary → promote": Scenario(),
    "broken quality (30 % exact match)": Scenario(accuracy=0.3),
    "5 % errors": Scenario(error_rate=0.05),
    "2× slower": Scenario(latency_factor=2.0),
}
METHOD = (
    "real CanaryController + default CanaryPolicy + Evidently drift per step; SIMULATED "
    "request stream (seeded samples, step duration = requests ÷ router RPS measured in this "
    "run + Locust start-up measured by loadgen); end-state transition = real promote/rollback "
    "time from the transitions benchmark. Flagger figures are its documented formula."
)


class SimulatedLoad:
    """A StepLoad whose runs take requests ÷ rps simulated seconds on a FakeClock."""

    def __init__(
        self, clock: FakeClock, scenario: Scenario, rps: float, startup_s: float, seed: int
    ) -> None:
        self.clock, self.rps, self.startup_s = clock, rps, startup_s
        self.scenario, self.seed = scenario, seed
        self.profile = canary_profile(
            latency_factor=scenario.latency_factor,
            error_rate=scenario.error_rate,
            accuracy=scenario.accuracy,
            seed=seed,
        )
        self.reference = frame_from_examples(read_jsonl(trained() / "golden.jsonl"))
        self.simulated_s = 0.0
        self.synthesis_s = 0.0
        self.requests = 0

    def run(self, weight: int, requests: int, out_dir: Path) -> StepEvidence:
        start = time.perf_counter()
        evidence = self.profile(weight, requests)
        current = self._canary_answers(requests * weight // 100)
        self.synthesis_s += time.perf_counter() - start
        drift = detect_drift(self.reference, current, drift_share=0.5)  # real cost, counted
        seconds = requests / self.rps + self.startup_s
        self.clock.advance(seconds)
        self.simulated_s += seconds
        self.requests += requests
        return replace(evidence, drift=drift)

    def _canary_answers(self, n: int) -> pd.DataFrame:
        """The canary's prompts and completions: golden prompts, right at its accuracy."""
        ref = self.reference.sample(n=max(n, 1), replace=True, random_state=self.seed)
        accuracy = self.scenario.accuracy
        wrong = pd.Series(range(len(ref))).mod(100).lt(round((1 - accuracy) * 100)).to_numpy()
        completion = ref["completion"].where(~wrong, ref["completion"] + "1")
        return pd.DataFrame({"prompt": ref["prompt"].to_numpy(), "completion": completion})


@dataclass(frozen=True)
class Timed:
    seconds: float
    simulated_s: float
    analysis_s: float
    transition_s: float
    result: CanaryResult
    requests: int


def run(ctx: Context) -> None:
    rps = ctx.facts.get("router_rps_50", DOCUMENTED_RPS)
    startup = ctx.facts.get("locust_startup_s", 0.0)
    source = "router, this run" if "router_rps_50" in ctx.facts else "documented"
    ctx.note(f"stream rate {rps:.0f} req/s ({source}), Locust start-up {startup:.1f} s a step")
    for label, scenario in SCENARIOS.items():
        found = [_one(ctx, scenario, rps, startup, seed) for seed in range(ctx.repeats(5))]
        _report(ctx, label, found)


def _one(ctx: Context, scenario: Scenario, rps: float, startup: float, seed: int) -> Timed:
    strategy = CanaryStrategy()
    clock = FakeClock()
    load = SimulatedLoad(clock, scenario, rps, startup, seed)
    target = FakeTarget()
    target.deploy(Variant("stable", "bench", "tiny-chat", "1", "bench-1"))
    target.deploy(Variant("canary", "bench", "tiny-chat", "2", "bench-2"))
    controller = CanaryController(target, load, clock=clock, sleep=clock.advance)
    start = time.perf_counter()
    result = controller.run(
        strategy.steps, strategy.policy, ctx.work / "rollback", interval_s=strategy.interval_s
    )
    analysis = time.perf_counter() - start - load.synthesis_s
    end = "promote_s" if result.passed else "rollback_s"
    transition = ctx.facts.get(end, 0.0)
    total = load.simulated_s + analysis + transition
    last = result.steps[-1]
    ctx.note(
        f"seed {seed}: {'promote' if result.passed else 'rollback'} after {total:.1f} s "
        f"(stream {load.simulated_s:.1f} + analysis {analysis:.1f} + {end} {transition:.1f}); "
        f"last step {last.weight}% {last.outcome}: {last.reason[:100]}"
    )
    return Timed(total, load.simulated_s, analysis, transition, result, load.requests)


def _report(ctx: Context, label: str, found: list[Timed]) -> None:
    promote = "promote" in label
    flagger = FLAGGER_INTERVAL_S * (FLAGGER_MAX / FLAGGER_STEP if promote else FLAGGER_THRESHOLD)
    formula = "1m × 50/2" if promote else "1m × 10"
    seconds = [t.seconds for t in found]
    expected = all(t.result.passed == promote for t in found)
    steps = sorted({f"{t.result.steps[-1].weight}%" for t in found})
    outcome = "promoted" if promote else "rolled back"
    measured = ("promote_s" if promote else "rollback_s") in ctx.facts
    notes = (
        f"{'all' if expected else 'NOT all'} {outcome}; decided at step {', '.join(steps)}; "
        f"stream {spread([t.simulated_s for t in found], 's')} (simulated, "
        f"{median([t.requests for t in found]):.0f} requests) + analysis "
        f"{spread([t.analysis_s for t in found], 's')} + {'promote' if promote else 'rollback'}() "
        + (f"{num(found[0].transition_s)} s (real, transitions)" if measured else "not measured: 0")
    )
    ctx.emit(
        Row(
            NAME,
            f"time to {'promote' if promote else 'roll back'}: {label}",
            spread(seconds, "s"),
            f"Flagger documented example: {formula} = {flagger:.0f} s",
            spread([s / flagger for s in seconds], "×"),
            "—",
            "yes" if expected else "**no**",
            notes,
        )
    )
