"""A canary step's drift check, seeded: false alarms of an identical canary, and power.

    python -m bench --only step_drift [--quick]

Each repetition draws one 10 % step: 900 stable and 100 canary answers to prompts from the
same distribution (the router splits one stream), and runs the step's drift check
(validation/drift.detect_drift, Evidently, fail at a drift share >= 0.5) two ways, side by
side on the same rows:
- canaryflow: the canary's answers against the stable's (infra/load/step_drift.py);
- before: the canary's answers against the release's evaluation set (500 rows, prompt and
  expected response, "" where the set has none), the reference until this change.
Three kinds of team: integer answers with an exact-match set (the demo), sentences where
the set expects a word ("The answer is 7." for "7"), and a set without expected responses
(judged by an LLM judge). Power: a canary whose answers are broken a third of the time.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pandas as pd  # type: ignore[import-untyped]

from bench.common import Context, Row
from validation.drift import detect_drift
from validation.golden import TaskSpec, sample

NAME = "step_drift"
METHOD = __doc__.split("\n\n", 2)[2].replace("\n", " ") if __doc__ else ""
N_STABLE, N_CANARY, N_SET = 900, 100, 500
SHARE = 0.5

Answer = Callable[[str], str]
KINDS: dict[str, tuple[Answer, bool]] = {  # kind: (how the model answers, set has answers)
    "integers, exact-match set": (lambda a: a, True),
    "sentences, one-word set": (lambda a: f"The answer is {a}.", True),
    "set without expected responses": (lambda a: a, False),
}


def frame(prompts: list[str], answers: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"prompt": prompts, "completion": answers})


def one_step(kind: str, seed: int, broken: float = 0.0) -> tuple[bool, bool]:
    """(drift vs the stable, drift vs the evaluation set) for one simulated step."""
    answer, answered = KINDS[kind]
    rng = random.Random(seed)
    stable = sample(TaskSpec(), N_STABLE, seed=10_000 + seed)
    canary = sample(TaskSpec(), N_CANARY, seed=20_000 + seed)
    evalset = sample(TaskSpec(), N_SET, seed=1)
    canary_out = [
        "I cannot help with that" if rng.random() < broken else answer(ex.answer) for ex in canary
    ]
    current = frame([ex.prompt for ex in canary], canary_out)
    vs_stable = detect_drift(frame([ex.prompt for ex in stable],
                                   [answer(ex.answer) for ex in stable]),
                             current, drift_share=SHARE, seed=seed)  # fmt: skip
    reference = frame([ex.prompt for ex in evalset],
                      [ex.answer if answered else "" for ex in evalset])  # fmt: skip
    vs_set = detect_drift(reference, current, drift_share=SHARE, seed=seed)
    return vs_stable.dataset_drift, vs_set.dataset_drift


def run(ctx: Context) -> None:
    reps = ctx.repeats(20)
    for kind in KINDS:
        found = [one_step(kind, seed) for seed in range(reps)]
        _emit(ctx, f"A/A false drift, {kind}", found, reps, goal="≤ 0.05", low_is_good=True)
    kind = "integers, exact-match set"
    found = [one_step(kind, seed, broken=1 / 3) for seed in range(reps)]
    _emit(ctx, "power, 1/3 of answers broken", found, reps, goal="≥ 0.9", low_is_good=False)


def _emit(ctx: Context, measure: str, found: list[tuple[bool, bool]], reps: int, *, goal: str,
          low_is_good: bool) -> None:  # fmt: skip
    new = sum(a for a, _ in found) / reps
    old = sum(b for _, b in found) / reps
    limit = float(goal.split()[-1])
    met = new <= limit if low_is_good else new >= limit
    ratio = f"{new / old:.2f}" if old else "—"
    how = "canary vs stable (canaryflow) / vs the evaluation set (before)"
    ctx.emit(Row(NAME, measure, f"{new:.2f} ({reps} steps)", f"{old:.2f} vs the set", ratio,
                 goal, "yes" if met else "no", notes=how))  # fmt: skip
