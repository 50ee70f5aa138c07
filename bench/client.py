"""A closed-loop HTTP load for side-by-side measurements (router, serving): same client, same
requests, only the server side differs.

    run = closed_loop(["http://127.0.0.1:8001"], chat_body(max_tokens=4), headers,
                      concurrency=16, duration_s=10)
    run.rps, run.p50_ms, run.p99_ms, run.tokens_per_s, run.failed

`concurrency` threads each send the next request as soon as the previous one is answered
(no think time). With several `urls`, client i talks to urls[i % len(urls)] (a balanced
client-side split), or, given `weights`, picks one at random per request. Latency is
send → whole body, client side.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import quantile

CHAT_PATH = "/v1/chat/completions"


def chat_body(
    max_tokens: int = 4, *, ignore_eos: bool = False, prompt: str = "49+5"
) -> dict[str, Any]:
    """A greedy chat completion; `ignore_eos` makes every answer exactly `max_tokens` long."""
    body: dict[str, Any] = {
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    if ignore_eos:
        body["ignore_eos"] = True
    return body


@dataclass(frozen=True)
class Call:
    latency_ms: float
    ok: bool
    tokens: int
    error: str = ""


@dataclass
class Run:
    """The calls of one closed-loop run and its wall time."""

    calls: list[Call] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok_calls(self) -> list[Call]:
        return [c for c in self.calls if c.ok]

    @property
    def failed(self) -> int:
        return sum(not c.ok for c in self.calls)

    @property
    def rps(self) -> float:
        return len(self.ok_calls) / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return sum(c.tokens for c in self.ok_calls) / self.elapsed_s if self.elapsed_s else 0.0

    def latency(self, q: float) -> float:
        return quantile([c.latency_ms for c in self.ok_calls], q)

    @property
    def p50_ms(self) -> float:
        return self.latency(0.5)

    @property
    def p99_ms(self) -> float:
        return self.latency(0.99)

    def first_error(self) -> str:
        return next((c.error for c in self.calls if not c.ok), "")


def one_call(http: httpx.Client, body: dict[str, Any]) -> Call:
    """POST one chat completion; ok is a 200 whose body parses; tokens from `usage`."""
    start = time.perf_counter()
    try:
        resp = http.post(CHAT_PATH, json=body)
        ms = (time.perf_counter() - start) * 1000
        if resp.status_code != 200:
            return Call(ms, False, 0, f"HTTP {resp.status_code}: {resp.text[:120]}")
        usage = resp.json().get("usage") or {}
        return Call(ms, True, int(usage.get("completion_tokens") or 0))
    except (httpx.HTTPError, ValueError) as exc:
        return Call((time.perf_counter() - start) * 1000, False, 0, f"{type(exc).__name__}: {exc}")


def closed_loop(
    urls: Sequence[str],
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    concurrency: int,
    duration_s: float | None = None,
    requests: int | None = None,
    weights: Sequence[float] | None = None,
    seed: int = 0,
) -> Run:
    """`concurrency` clients until `duration_s` passed or `requests` were sent."""
    if duration_s is None and requests is None:
        raise ValueError("give duration_s or requests")
    run = Run()
    lock = threading.Lock()
    budget = [requests if requests is not None else 1 << 62]
    # Clients are built before the clock starts: an httpx.Client costs tens of ms of CPU
    # (its SSL context), which must not count as server time.
    pools = [
        [httpx.Client(base_url=u, headers=headers, timeout=120) for u in urls]
        for _ in range(concurrency)
    ]
    ready = threading.Barrier(concurrency + 1)
    clock = {"deadline": 0.0}

    def claim() -> bool:
        with lock:
            if budget[0] <= 0 or time.perf_counter() >= clock["deadline"]:
                return False
            budget[0] -= 1
            return True

    def worker(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        clients = pools[i]
        ready.wait()
        while claim():
            if weights is None:  # balanced: client i always talks to urls[i % len(urls)]
                http = clients[i % len(clients)]
            else:
                http = rng.choices(clients, weights=weights)[0]
            run.calls.append(one_call(http, body))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    clock["deadline"] = start + (duration_s if duration_s is not None else 1e9)
    ready.wait()
    for t in threads:
        t.join()
    run.elapsed_s = time.perf_counter() - start
    for pool in pools:
        for c in pool:
            c.close()
    return run


def wait_ready(url: str, timeout_s: float = 120, path: str = "/health") -> None:
    """Until GET url+path answers 200; raises TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url}{path} not ready after {timeout_s:g} s")
