"""Failed requests during promote and during rollback, under steady load, real containers.

    python -m bench --only transitions [--quick]

On the shared stack (bench/stack.py): canary at 50 %, a request stream through HAProxy
(tests/fixtures/request_stream.Stream: 8 clients flat out, small chat completions), then
DockerTarget.promote() (canary → 100 %, old stable drained and removed); a new canary at
50 % and DockerTarget.rollback() the same way. Counted per transition: every request sent
from `before` requests ahead of the call until `after` requests past its end (together at
least 2,000 in a full run), and among them those sent while the call ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import Context, Row, spread, verdict
from bench.stack import VllmStack, vllm_stack
from tests.fixtures.request_stream import Stream

NAME = "transitions"
GOAL_MIN_REQUESTS = 2000
METHOD = (
    "measured: DockerTarget.promote()/rollback() on real vLLM containers at a 50 % split "
    "while 8 clients stream chat completions through HAProxy flat out; every request in a "
    "window around the call counted (tests/fixtures/request_stream.Stream)."
)


@dataclass(frozen=True)
class Transition:
    name: str
    seconds: float
    sent: int
    failed: int
    during: int
    errors: tuple[str, ...]


def run(ctx: Context) -> None:
    stack = vllm_stack(ctx)
    found: dict[str, list[Transition]] = {"promote": [], "rollback": []}
    for _ in range(ctx.repeats(1)):
        for name in ("promote", "rollback"):
            stack.ensure_canary()
            stack.target.set_weights(50)
            action = stack.target.promote if name == "promote" else stack.target.rollback
            found[name].append(_under_load(ctx, stack, name, action))
    for name, items in found.items():
        _report(ctx, name, items)
        ctx.facts[f"{name}_s"] = sorted(t.seconds for t in items)[len(items) // 2]


def _under_load(
    ctx: Context, stack: VllmStack, name: str, action: Callable[[], None]
) -> Transition:
    half = ctx.pick(150, GOAL_MIN_REQUESTS // 2 + 100)
    workers = ctx.pick(4, 8)
    with Stream(
        stack.target.router_url, stack.key, workers=workers, max_requests=10**7, max_seconds=600
    ) as stream:
        t0 = time.monotonic()
        stream.wait_for(half, t0, timeout_s=300)
        start = time.monotonic()
        action()
        end = time.monotonic()
        stream.wait_for(half, end, timeout_s=300)
        stop = time.monotonic()
    window = stream.between(t0, stop)
    during = stream.between(start, end)
    bad = [r for r in window if not r.ok]
    item = Transition(
        name,
        end - start,
        len(window),
        len(bad),
        len(during),
        tuple(sorted({r.error[:120] for r in bad}))[:5],
    )
    ctx.note(
        f"{name}: {item.seconds:.1f} s, {item.failed}/{item.sent} failed "
        f"({item.during} sent while it ran)" + (f": {item.errors}" if bad else "")
    )
    return item


def _report(ctx: Context, name: str, items: list[Transition]) -> None:
    sent = sum(t.sent for t in items)
    failed = sum(t.failed for t in items)
    enough = all(t.sent >= GOAL_MIN_REQUESTS for t in items)
    ctx.emit(
        Row(
            NAME,
            f"failed requests during {name}",
            f"{failed} of {sent}",
            f"{sum(t.during for t in items)} sent while {name}() ran",
            f"{failed / sent:.2%}" if sent else "—",
            f"0 of ≥ {GOAL_MIN_REQUESTS:,} per transition",
            verdict(failed == 0 and enough),
            f"{len(items)} transition(s); {name}() took "
            f"{spread([t.seconds for t in items], 's')}"
            + (f"; errors: {'; '.join(items[0].errors)}" if failed else ""),
        )
    )
