"""Load generator headroom: the most requests/s the release's Locust load makes on one core.

    python -m bench --only loadgen [--quick]

The project's own load path, unchanged: infra/load/runner.run_load (Locust in a subprocess,
infra/load/locustfile.py: streamed chat completions, one JSONL record per request), with
its command wrapped in `taskset -c 0`, against bench/trivial_server.py (uvicorn + httptools,
pinned to core 1). The rate is counted from the request records (first to last send), so
Locust's start-up is left out. Compared with the router's max RPS to real vLLM measured in
the same run (router benchmark), or the documented ~150 req/s when that did not run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench.common import Context, Row, median, spread, verdict
from bench.procs import child_server
from infra.load.prompts import PromptSource
from infra.load.runner import LoadProfile, run_load
from tests.fixtures.docker_target import free_ports

NAME = "loadgen"
DOCUMENTED_VLLM_RPS = 150.0  # /work/shared/ENVIRONMENT.md: 16-token completions, 8 users
METHOD = (
    "measured: infra/load/runner.run_load (Locust subprocess, the release's locustfile) "
    "under `taskset -c 0` against a raw-ASGI uvicorn server pinned to core 1; rate = requests "
    "/ (last send − first send) from Locust's own per-request records."
)


def run(ctx: Context) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    locust_cpu, server_cpu = str(cpus[0]), str(cpus[-1])
    port = free_ports(1)[0]
    args = [
        "-m",
        "uvicorn",
        "bench.trivial_server:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with child_server(args, port, cpus=server_cpu, ready_path="/health") as url:
        best: list[float] = []
        overhead: list[float] = []
        for users in ctx.pick((8,), (8, 32)):
            found = [_one(ctx, url, users, locust_cpu, rep) for rep in range(ctx.repeats(3))]
            best.append(median([rate for rate, _ in found]))
            overhead += [startup for _, startup in found]
            _report(ctx, users, [rate for rate, _ in found])
        ctx.facts["locust_rps"] = max(best)
        ctx.facts["locust_startup_s"] = median(overhead)
        ctx.emit(
            Row(
                NAME,
                "Locust start-up + shutdown per load run",
                spread(overhead, "s"),
                notes="run_load wall time minus first→last send; paid once per canary step",
            )
        )


def _one(ctx: Context, url: str, users: int, cpu: str, rep: int) -> tuple[float, float]:
    out = ctx.work / f"loadgen-{users}-{rep}"
    profile = LoadProfile(
        users=users,
        spawn_rate=float(users),
        prompts=PromptSource(size=200),
        max_tokens=8,
        stream=True,
        max_duration_s=ctx.pick(8.0, 10.0),
    )
    command = ["taskset", "-c", cpu, sys.executable, "-m", "locust"]
    result = run_load(
        url,
        "",
        "tiny-chat",
        profile,
        out,
        requests=ctx.pick(4000, 40_000),
        locust_command=command,
        timeout_s=120,
    )
    rate, span = records_rate(result.results)
    failures = sum(v.failures for v in result.variants.values())
    ctx.note(f"{users} users: {rate:.0f} req/s ({result.completed} requests, {failures} failed)")
    return rate, result.duration_s - span


def records_rate(results: Path) -> tuple[float, float]:
    """(requests/s, seconds) between the first and the last send in a results JSONL."""
    stamps = sorted(json.loads(line)["ts"] for line in results.read_text().splitlines() if line)
    if len(stamps) < 2 or stamps[-1] == stamps[0]:
        return 0.0, 0.0
    span = stamps[-1] - stamps[0]
    return (len(stamps) - 1) / span, span


def _report(ctx: Context, users: int, rates: list[float]) -> None:
    vllm = ctx.facts.get("router_rps_50")
    source = "router → 2 vLLM, same run" if vllm else "documented vLLM ~150 req/s"
    vllm = vllm or DOCUMENTED_VLLM_RPS
    ratio = [r / vllm for r in rates]
    ctx.emit(
        Row(
            NAME,
            f"Locust req/s on one core, {users} users",
            spread(rates, "req/s"),
            f"{vllm:.0f} req/s ({source})",
            spread(ratio, "×"),
            "> 1× (never the bottleneck)",
            verdict(min(ratio) > 1.0),
            "streamed chat completions, trivial server on its own core",
        )
    )
