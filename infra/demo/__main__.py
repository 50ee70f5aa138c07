"""`make demo`: the whole release story on this machine, hands-off (DESIGN §7).

    python -m infra.demo            # what `make demo` runs after `make setup`

train v1 → release (first deploy) → train a better v2 → canary → promote → a deliberately
bad v3 → canary → rollback → a normal and a drifted window of live traffic → drift-check
(deployment run) → the drift event triggers retrain → retrain starts the release of its
candidate; then the second model, a Qwen2 JSON extractor on a target of its own
(infra/demo/second_model.py): a good v1 promoted, a fine-tune that broke its JSON rolled
back, then its own drift → retrain → release chain (infra/demo/json_chain.py). Every
release and check is a run of a deployment of prefect.yaml on the process worker; each
verdict is read back from its Prefect artifact and printed with its evidence.

Re-running it resets what the previous demo left (its target and its registered model);
anything the demo did not create is left alone and the demo refuses to start over it.
"""

from __future__ import annotations

import json
import os
import sys
import time

from infra.demo.evaluation import DATASET, demo_evaluation, register_demo_set
from infra.demo.reset import DemoStateError, reset_previous_demo
from infra.demo.second_model import JSON_NAME, json_story
from infra.demo.story import NAME, RELEASE, DemoContext, Result, say, where_to_look
from infra.demo_model.train import TrainConfig
from infra.errors import CanaryflowError
from validation.golden import TaskSpec

DRIFTED = TaskSpec(min_operand=100, max_operand=199)
# As prefect.yaml's release parameters: the demo's traffic is small, so an undecided step
# looks for 150 s (the default is 300) before it advances or rolls back.
CANARY = {"policy": {"progress_deadline_s": 150}}


def drift_check(ctx: DemoContext, label: str, since: float) -> tuple[Result, float]:
    params = {"spec": {"model_name": NAME, "evaluation": {"dataset": DATASET},
                       "since": round(since, 3), "min_rows": 100}}  # fmt: skip
    say(f"  $ prefect deployment run drift-check/drift-check --params '{json.dumps(params)}'")
    asked = time.time()
    run_id = ctx.api.run_deployment("drift-check/drift-check", params)
    return ctx.follow(label, run_id, f"drift-{NAME}", time.monotonic()), asked


def story(ctx: DemoContext, only: str | None = None) -> dict[str, str]:
    """The scenario (or only the second model's part, only=extract-json); returns {step:
    observed verdict} for the expectations check."""
    if only == JSON_NAME:
        say(f"\n== 7. only the second model ({ONLY_ENV}={JSON_NAME}): {JSON_NAME}")
        return json_story(ctx, CANARY)
    say("\n== 2. v1: train, then release it (nothing serves yet: first deploy)")
    v1 = ctx.train("v1", TrainConfig())
    evaluation = demo_evaluation()
    seen = {"v1": ctx.release("v1", {"model": f"models:/{NAME}/{v1}",
                                     "evaluation": evaluation}).verdict}  # fmt: skip

    say("\n== 3. v2: trained longer → canary 10% → 25% → 50% → promote")
    v2 = ctx.train("v2", TrainConfig(steps=1500))
    seen["v2"] = ctx.release("v2", {"model": f"models:/{NAME}/{v2}", "evaluation": evaluation,
                                    "canary": CANARY}).verdict  # fmt: skip

    say("\n== 4. v3: deliberately bad (700 steps, ~43% right), released with the offline")
    say("        quality gate switched off, so only the canary can stop it")
    v3 = ctx.train("v3", TrainConfig(steps=700))
    gate_off = demo_evaluation(threshold=0.0, margin=1.0)
    r3 = ctx.release(
        "v3", {"model": f"models:/{NAME}/{v3}", "evaluation": gate_off, "canary": CANARY}
    )
    seen["v3"] = r3.verdict
    ttr = ctx.time_to_decision(r3)
    if ttr is not None:
        r3.extra["time_to_rollback_s"] = ttr
        say(f"  time to rollback, from the canary's first request: {ttr:.0f} s")

    say("\n== 5. live traffic: a normal window, then a drifted one (operands 100..199)")
    since = time.time()
    ctx.live_traffic("normal window", TaskSpec(), 200, seed=11)
    seen["drift-check (normal)"] = drift_check(ctx, "drift-check, normal window", since)[0].verdict
    since = time.time()
    ctx.live_traffic("drifted window", DRIFTED, 200, seed=12)
    checked, asked = drift_check(ctx, "drift-check, drifted window", since)
    seen["drift-check (drifted)"] = checked.verdict

    say("\n== 6. canaryflow.drift.detected → retrain (trigger) → release of its candidate")
    retrain = ctx.api.wait_for_new_run("retrain/retrain", after=asked, timeout_s=180)
    say(f"  the trigger started retrain run {retrain['name']}")
    ctx.follow("retrain", retrain["id"], f"retrain-{NAME}", time.monotonic())
    follow = ctx.api.wait_for_new_run(RELEASE, after=asked, timeout_s=120)
    say(f"  retrain started release run {follow['name']}: {follow['parameters']['spec']}")
    seen["retrained"] = ctx.follow("retrained release", follow["id"], f"release-{NAME}",
                                   time.monotonic()).verdict  # fmt: skip

    say(f"\n== 7. the second model: {JSON_NAME} (Qwen2, JSON answers) on a target of its own,")
    say("        judged by JSON-schema and field scorers on its own evaluation set")
    seen.update(json_story(ctx, CANARY))
    return seen


ONLY_ENV = "CANARYFLOW_DEMO_ONLY"
EXPECTED = {
    "v1": "promoted",
    "v2": "promoted",
    "v3": "rolled_back",
    "drift-check (normal)": "no_drift",
    "drift-check (drifted)": "drift",
    "retrained": "promoted",
    "json v1": "promoted",
    "json v2": "rolled_back",
    "json drift-check": "drift",
    "json retrained": "promoted",
}


def main() -> int:
    started = time.monotonic()
    only = os.environ.get(ONLY_ENV) or None
    if only not in (None, JSON_NAME):
        raise DemoStateError(
            f"{ONLY_ENV}={only!r}: the demo has one part to run alone, "
            f"{JSON_NAME!r} (make demo ONLY={JSON_NAME}); unset it for all"
        )
    say("== 1. services: Prefect server + process worker, MLflow UI; deployments")
    ctx = DemoContext.start()
    if stale := ctx.api.cancel_unfinished([RELEASE, "drift-check/drift-check", "retrain/retrain"]):
        say(f"  cancelled runs an interrupted demo left: {', '.join(stale)}")
    reset_previous_demo(ctx.settings)
    say(f"  evaluation set: MLflow dataset {register_demo_set(ctx.settings)} (the release's rows)")
    seen = story(ctx, only)
    say("\n== summary")
    say(f"  {'run':30} {'verdict':12} {'seconds':>8}")
    for result in ctx.results:
        say(f"  {result.label:30} {result.verdict:12} {result.seconds:8.0f}")
    for result in ctx.results:
        if "time_to_rollback_s" in result.extra:
            say(f"  v3 time to rollback from its first canary request: "
                f"{result.extra['time_to_rollback_s']:.0f} s")  # fmt: skip
    say(f"  wall time: {time.monotonic() - started:.0f} s")
    say("\n== where to look")
    for line in where_to_look(ctx.settings):
        say(f"  {line}")
    say(f"  crons (drift-check every 30 min, retrain nightly): "
        f"{ctx.activate_schedules()}")  # fmt: skip
    wrong = {k: v for k, v in seen.items() if EXPECTED.get(k) != v}
    if wrong:
        say(f"\nUNEXPECTED verdicts: {wrong}; expected {EXPECTED}")
        return 1
    say("\ndemo: every verdict as expected")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CanaryflowError as exc:
        print(f"demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
