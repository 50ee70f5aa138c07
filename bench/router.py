"""Router overhead: the same requests direct to the vLLM containers vs through HAProxy.

    python -m bench --only router [--quick]

Two cases on the shared stack (stable v1 + canary v2, one core each, bench/stack.py):
- canary at 0 %: direct to the stable container vs the router (which sends all to it);
- the 50 % split: direct, half the clients talk to the stable and half to the canary, vs
  the router doing the split — so both sides have the same two servers behind them.

Latency: one request at a time, direct and router alternating request by request (so load
drift on this shared machine hits both alike); added p50/p99 = router − direct.
Max sustained RPS: closed loop at 16 concurrent clients, in 2-s slices alternating
direct/router (3 slices a side per repeat, so load drift hits both alike); ratio =
router / direct. Medians over repeats (min–max).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from bench.client import chat_body, closed_loop, one_call
from bench.common import Context, Row, median, quantile, spread, verdict
from bench.stack import VllmStack, vllm_stack

NAME = "router"
CONCURRENCY = 16
SLICES = 3  # per side and repeat, interleaved direct/router (ABBA…)
GOAL_P50_MS = 1.0
GOAL_RPS = 0.9
METHOD = (
    "measured: real vLLM containers (one core each) behind the DockerTarget's HAProxy; "
    "latency from sequential requests alternating direct/router; RPS from 16-client closed "
    "loops; at 50 % the direct side splits the clients evenly over the same two containers."
)


def run(ctx: Context) -> None:
    stack = vllm_stack(ctx)
    stack.ensure_canary()
    for percent in (0, 50):
        stack.target.set_weights(percent)
        time.sleep(1)
        label = "canary at 0 %" if percent == 0 else "50 % split"
        direct = [stack.direct("stable")] + ([stack.direct("canary")] if percent else [])
        lat = [_latency(ctx, stack, direct) for _ in range(ctx.repeats(3))]
        rps = [_throughput(ctx, stack, direct, rep) for rep in range(ctx.repeats(3))]
        _report(ctx, label, lat, rps)
        ctx.facts[f"router_rps_{percent}"] = median([t.router_rps for t in rps])


def _latency(ctx: Context, stack: VllmStack, direct: list[str]) -> dict[str, list[float]]:
    """Sequential requests, direct and router alternating; ms per request."""
    body = chat_body(4)
    n = ctx.pick(60, 200)
    times: dict[str, list[float]] = {"direct": [], "router": []}
    clients = [httpx.Client(base_url=u, headers=stack.headers, timeout=60) for u in direct]
    router = httpx.Client(base_url=stack.target.router_url, headers=stack.headers, timeout=60)
    try:
        for http in [router, *clients] * 3:  # warm every path's connection
            one_call(http, body)
        for i in range(n):
            for name, http in (("direct", clients[i % len(clients)]), ("router", router)):
                call = one_call(http, body)
                if call.ok:
                    times[name].append(call.latency_ms)
    finally:
        for c in [*clients, router]:
            c.close()
    return times


@dataclass(frozen=True)
class Throughput:
    direct_rps: float
    router_rps: float
    failed: dict[str, int]
    errors: tuple[str, ...]


def _throughput(ctx: Context, stack: VllmStack, direct: list[str], rep: int) -> Throughput:
    """Closed loops at CONCURRENCY in short slices, direct and router interleaved."""
    body = chat_body(4)
    slice_s = ctx.pick(1.0, 2.0)
    sides = {"direct": direct, "router": [stack.target.router_url]}
    calls: dict[str, int] = dict.fromkeys(sides, 0)
    seconds: dict[str, float] = dict.fromkeys(sides, 0.0)
    failed: dict[str, int] = dict.fromkeys(sides, 0)
    errors: list[str] = []
    order = ("direct", "router") if rep % 2 == 0 else ("router", "direct")
    for i in range(SLICES):
        for name in order if i % 2 == 0 else order[::-1]:
            run = closed_loop(
                sides[name],
                body,
                stack.headers,
                concurrency=CONCURRENCY,
                duration_s=slice_s,
                seed=rep * SLICES + i,
            )
            calls[name] += len(run.ok_calls)
            seconds[name] += run.elapsed_s
            failed[name] += run.failed
            errors += [f"{name}: {c.error[:100]}" for c in run.calls if not c.ok]
    out = {name: calls[name] / seconds[name] for name in sides}
    ctx.note(
        f"direct ×{len(direct)} {out['direct']:.0f} req/s, router {out['router']:.0f} "
        f"req/s; failed {failed}"
    )
    return Throughput(out["direct"], out["router"], failed, tuple(errors))


def _report(
    ctx: Context, label: str, lat: list[dict[str, list[float]]], rps: list[Throughput]
) -> None:
    for q, goal in ((0.5, GOAL_P50_MS), (0.99, None)):
        direct = [quantile(t["direct"], q) for t in lat]
        router = [quantile(t["router"], q) for t in lat]
        added = [r - d for r, d in zip(router, direct, strict=True)]
        ratio = [r / d for r, d in zip(router, direct, strict=True)]
        pname = "p50" if q == 0.5 else "p99"
        ctx.emit(
            Row(
                NAME,
                f"added {pname} latency, {label}",
                spread(added, "ms", 2),
                f"direct {spread(direct, 'ms')} vs router {spread(router, 'ms')}",
                spread(ratio, "×"),
                f"≤ {goal:g} ms" if goal else "—",
                verdict(median(added) <= goal) if goal else "—",
                f"{sum(len(t['router']) for t in lat)} requests each side, sequential",
            )
        )
    direct_rps = [t.direct_rps for t in rps]
    router_rps = [t.router_rps for t in rps]
    ratio = [t.router_rps / t.direct_rps for t in rps]
    failed = {side: sum(t.failed[side] for t in rps) for side in ("direct", "router")}
    errors = sorted({e for t in rps for e in t.errors})[:2]
    ctx.emit(
        Row(
            NAME,
            f"max sustained RPS, {label}",
            spread(router_rps, "req/s"),
            f"direct {spread(direct_rps, 'req/s')}",
            spread(ratio, "×"),
            f"≥ {GOAL_RPS:g}×",
            verdict(median(ratio) >= GOAL_RPS),
            f"closed loop, {CONCURRENCY} clients; failed requests: direct {failed['direct']}, "
            f"router {failed['router']}" + (f" ({'; '.join(errors)})" if errors else ""),
        )
    )
