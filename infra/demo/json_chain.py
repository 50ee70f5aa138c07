"""The second demo model's drift → retrain → release chain (#18: the loop for both models).

    extract-json's users move to a new market (names and cities the model never saw, longer
    than the usual ones) → drift-check of its target → canaryflow.drift.detected for
    extract-json → its own retrain deployment (`retrain/retrain-extract-json`: that team's
    trainer, infra/demo_model_json/trainer.py, labels the captured prompts with its rule and
    fine-tunes the champion) → release on its target → promoted → fresh new-market traffic.

The same flows, trigger and interfaces as tiny-chat's chain; nothing in them knows either
model. Used by infra/demo/second_model.py after the two JSON releases.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from infra.demo.story import RELEASE, DemoContext, heartbeat, say
from infra.demo_model_json import task
from infra.load.traffic import Sent, send_traffic
from validation.golden import Example

RETRAIN = "retrain/retrain-extract-json"
TRAFFIC_MAX_TOKENS = 64  # the longest drifted answer is under 50 tokens


class FieldTally:
    """send_traffic's `correct` rule: every expected field is in the completion's JSON
    object, with its value; it also keeps each answer's share of fields right."""

    def __init__(self) -> None:
        self.shares: list[float] = []  # one per answer (list.append is thread-safe)

    def __call__(self, completion: str, expected: str) -> bool:
        self.shares.append(task.field_accuracy(completion.strip(), json.loads(expected)))
        return self.shares[-1] == 1.0

    def share(self, asked: int) -> float:
        """Fields right over `asked` requests; a request that failed has none right."""
        return sum(self.shares) / asked if asked else 0.0


@dataclass(frozen=True)
class Served:
    """What a window of user requests got back: every field right, and the share of fields."""

    sent: Sent
    field_share: float


def json_traffic(ctx: DemoContext, target: dict[str, Any], name: str, label: str,
                 examples: list[task.Example]) -> Served:  # fmt: skip
    """`examples` as user requests through the target's router."""
    from infra.targets import docker, make_target

    docker.register()
    served = make_target("docker", **target)
    router = served.status().router_url
    if router is None:
        raise RuntimeError(f"nothing serves on target {target['name']}: its router is down")
    key = served.api_key_file.read_text().strip()  # type: ignore[attr-defined]
    asked = [Example(ex.prompt, ex.expected_response) for ex in examples]
    tally = FieldTally()
    with heartbeat(f"{label}: sending {len(asked)} requests through {name}'s router"):
        sent = send_traffic(router, key, name, asked, max_tokens=TRAFFIC_MAX_TOKENS,
                            correct=tally)  # fmt: skip
    share = tally.share(len(asked))
    say(f"  {label}: {len(asked)} requests, {sent.ok} answered, {sent.correct} with every "
        f"field right, {share:.0%} of fields right")  # fmt: skip
    return Served(sent, share)


def json_chain(ctx: DemoContext, name: str, target: dict[str, Any], dataset: str) -> dict[str, str]:
    """Drifted traffic → drift-check → retrain (trigger) → release; {step: verdict}."""
    say(f"\n== 9. {name}'s users move to a new market: names and cities it never saw")
    new_market = task.drifted(200, seed=21)
    since = time.time()
    before = json_traffic(ctx, target, name, "new-market window", new_market)
    params = {"spec": {"model_name": name, "evaluation": {"dataset": dataset},
                       "target_settings": target, "since": round(since, 3),
                       "min_rows": 100}}  # fmt: skip
    say(f"  $ prefect deployment run drift-check/drift-check --params '{json.dumps(params)}'")
    asked = time.time()
    run_id = ctx.api.run_deployment("drift-check/drift-check", params)
    seen = {"json drift-check": ctx.follow(f"{name} drift-check", run_id, f"drift-{name}",
                                           time.monotonic()).verdict}  # fmt: skip

    say(f"\n== 10. canaryflow.drift.detected for {name} → {RETRAIN} (that team's trainer)")
    say("        → release of its candidate on its own target")
    retrain = ctx.api.wait_for_new_run(RETRAIN, after=asked, timeout_s=180)
    say(f"  the trigger started {RETRAIN} run {retrain['name']}")
    ctx.follow(f"{name} retrain", retrain["id"], f"retrain-{name}", time.monotonic())
    follow = ctx.api.wait_for_new_run(RELEASE, after=asked, timeout_s=120)
    say(f"  retrain started release run {follow['name']}: {follow['parameters']['spec']['model']}")
    seen["json retrained"] = ctx.follow(f"{name} retrained release", follow["id"],
                                        f"release-{name}", time.monotonic()).verdict  # fmt: skip
    fresh = task.drifted(len(new_market), seed=22)  # new sentences, not the trained-on ones
    after = json_traffic(ctx, target, name, "a fresh new-market window", fresh)
    say(
        f"  every field right on new-market sentences: {before.sent.correct} of "
        f"{len(new_market)} served by the champion → {after.sent.correct} of {len(fresh)} by "
        f"the retrained model (fields right {before.field_share:.0%} → {after.field_share:.0%})"
    )
    return seen
