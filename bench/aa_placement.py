"""A/A placement: the same model as stable and as canary, per CPU placement of the two.

    python -m bench --only aa_placement [--quick]

An identical canary must measure as the stable, or a release judged on latency rolls a good
model back. For each placement candidate the DockerTarget deploys the serving image of the
demo model twice (v1 stable, v2 canary: the same image), then the pipeline's own load
generator (infra/load.run_load: Locust in a subprocess, 4 users, streamed 16-token chat
completions, synthetic prompts) sends a fixed number of requests through HAProxy at 10, 25
and 50 % canary weight. From the per-request records: p50 and p95 latency and p50 TTFT of
the canary and of the stable, and canary / stable ratios (1.00 = fair).

Candidates (DockerTargetConfig.cpusets / omp_threads, infra/targets/docker_config.py):
- split:  slot a on the first half of the CPUs, slot b on the second, threads bound there
  (the old default);
- shared: both slots on all CPUs, half as many unbound OpenMP threads each (the default).

Locust, the bench process, Prometheus and whatever else runs on the machine float over
the cores as they do during a release: that is the condition being measured. At 10 % the
stable also carries 9× the canary's load (more batching, more queueing), which moves the
ratio whatever the placement; the 50 % rows isolate placement.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from bench.common import Context, Row, num, verdict
from bench.stack import VllmStack, serving_image
from infra.load.records import read_records
from infra.load.runner import LoadProfile, run_load
from infra.targets.docker_config import shared_cpus, split_cpus

NAME = "aa_placement"
WEIGHTS = (10, 25, 50)
GOAL = (0.8, 1.25)  # canary / stable p95 of an identical model
METHOD = (
    "measured: the same serving image deployed as stable and canary on the DockerTarget, "
    "once per CPU placement; infra/load.run_load (Locust, 4 users, streamed 16-token chats) "
    "through HAProxy at 10/25/50 %; canary/stable p50, p95 latency and p50 TTFT."
)


@dataclass(frozen=True)
class Side:
    count: int
    p50: float
    p95: float
    ttft50: float


@dataclass(frozen=True)
class Cell:
    placement: str
    weight: int
    canary: Side
    stable: Side

    def ratio(self, field: str) -> float:
        c, s = getattr(self.canary, field), getattr(self.stable, field)
        return c / s if s else math.nan


def candidates() -> dict[str, dict[str, Any]]:
    """Placement name -> DockerTargetConfig overrides."""
    return {"split": {"cpusets": split_cpus()}, "shared": {"cpusets": shared_cpus()}}


def run(ctx: Context) -> None:
    _, image = serving_image()
    requests = ctx.pick(800, 3000)
    cells: list[Cell] = []
    for rep in range(ctx.repeats(2)):
        names = list(candidates())
        for name in names if rep % 2 == 0 else names[::-1]:  # order drift hits both alike
            cells += _measure(ctx, image, name, requests, rep)
    _table(ctx, cells)
    for cell in cells:
        _row(ctx, cell)


def _measure(ctx: Context, image: str, name: str, requests: int, rep: int) -> list[Cell]:
    overrides = candidates()[name]
    stack = VllmStack(ctx.work / f"aa-{name}-{rep}", image, **overrides)
    ctx.resources.callback(stack.close)  # also after an error
    try:
        stack.ensure_canary()
        ctx.note(f"{name}: cpusets {stack.cpuset('stable')} / {stack.cpuset('canary')}")
        profile = LoadProfile(users=4, max_tokens=16, stream=True, max_duration_s=600)
        out: list[Cell] = []
        for weight in WEIGHTS:
            stack.target.set_weights(weight)
            time.sleep(1)
            result = run_load(
                stack.target.router_url, stack.key, "tiny-chat", profile,
                ctx.work / f"aa-{name}-{rep}" / f"w{weight}", requests=requests,
            )  # fmt: skip
            records = read_records(result.results)
            cell = Cell(name, weight, _side(records, "canary"), _side(records, "stable"))
            ctx.note(
                f"{name} {weight:>2} %: {cell.canary.count} canary / {cell.stable.count} stable "
                f"in {result.duration_s:.0f} s; p95 ratio {num(cell.ratio('p95'))}"
            )
            out.append(cell)
        return out
    finally:
        stack.close()


def _side(records: list[Any], variant: str) -> Side:
    ok = [r for r in records if r["variant"] == variant and r["ok"]]
    lat = sorted(r["latency_ms"] for r in ok)
    ttft = sorted(t for r in ok if (t := r["ttft_ms"]) is not None)
    return Side(len(ok), _q(lat, 0.5), _q(lat, 0.95), _q(ttft, 0.5))


def _q(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    pos = (len(values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _table(ctx: Context, cells: list[Cell]) -> None:
    """Canary / stable ratios, placements side by side, one line per weight."""
    names = list(dict.fromkeys(c.placement for c in cells))
    head = " | ".join(f"{n}: p50 · p95 · ttft50" for n in names)
    print(f"\n  canary / stable (identical models)\n  | weight | {head} |", flush=True)
    for weight in WEIGHTS:
        parts = []
        for name in names:
            mine = [c for c in cells if c.placement == name and c.weight == weight]
            parts.append(
                " ; ".join(
                    " · ".join(num(c.ratio(f), 3) for f in ("p50", "p95", "ttft50")) for c in mine
                )
            )
        print(f"  | {weight} % | " + " | ".join(parts) + " |", flush=True)


def _row(ctx: Context, cell: Cell) -> None:
    ratio = cell.ratio("p95")
    c, s = cell.canary, cell.stable
    ctx.emit(
        Row(
            NAME,
            f"canary/stable p95, identical model, {cell.placement}, {cell.weight} %",
            f"{num(c.p95)} ms (p50 {num(c.p50)}, ttft50 {num(c.ttft50)})",
            f"stable {num(s.p95)} ms (p50 {num(s.p50)}, ttft50 {num(s.ttft50)})",
            f"{num(ratio)}× (p50 {num(cell.ratio('p50'))}×)",
            f"{GOAL[0]:g}–{GOAL[1]:g}×",
            verdict(GOAL[0] <= ratio <= GOAL[1]),
            f"{c.count} canary / {s.count} stable requests",
        )
    )
