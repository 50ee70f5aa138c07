"""The paired, equal-conditions window: every evaluation prompt to BOTH variants, directly.

    result = run_paired({"stable": "http://127.0.0.1:8782", "canary": "http://127.0.0.1:8783"},
                        api_key, "my-model", rows, out_dir / "paired.jsonl",
                        PairedSettings(pairs=64, concurrency=2, max_tokens=16))
    result.pairs, result.records          # complete pairs sent, one JSONL line per half

Why: through the weighted router at 10 % the stable carries 9x the canary's load and each
variant answers different prompts, so neither latency nor quality can be compared fairly.
Here each pair sends the same messages to both variants' own endpoints (bypassing the
router) at the same moment, and `concurrency` pairs run at once, so each variant has exactly
`concurrency` requests of the same prompt stream in flight at most. The variant whose
request is sent first alternates from pair to pair (pair 0 stable first, pair 1 canary
first, ...), so neither gets the first write on every connection. Requests are streamed
(`stream: true`): TTFT is the first chunk carrying content, the inter-token gaps are the
times between content chunks as they arrive, latency is the end of the stream.

Bounded: at most `pairs` pairs (and never more than the rows given), no new pair after
`time_limit_s`, each request within `request_timeout_s`; only
loopback endpoints are accepted (PairedWindowError otherwise). A pair is written only when
both halves have ended (ok or not), so both sides always hold the same prompt set.

Request ids start `cf-load-paired-` (infra/load/wire.SYNTHETIC_REQUEST_PREFIX + "paired-"):
the servers' capture marks these as synthetic, so drift checks and the user-traffic count
leave them out.

Why httpx's AsyncClient and not a Locust run: the window needs each SSE chunk's arrival time,
two requests started together per prompt, and a fixed alternation of who goes first, none of
which Locust's closed-loop users express; Locust cannot run in the pipeline process (gevent
hangs Prefect) while httpx is already a pipeline dependency (Prefect's client), streams
line by line (`aiter_lines`) and takes a `transport=` so unit tests run against
`httpx.MockTransport` with no server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar
from urllib.parse import urlsplit

import httpx

from infra.errors import PairedWindowError
from infra.load.records import RequestRecord
from infra.load.wire import SYNTHETIC_REQUEST_PREFIX, chat_body, http_error, parse_sse_line
from serving.middleware import MODEL_VERSION_HEADER

PAIRED_REQUEST_PREFIX = SYNTHETIC_REQUEST_PREFIX + "paired-"
VARIANTS: tuple[str, str] = ("stable", "canary")
Row = tuple[str, Sequence[Mapping[str, str]]]
"""(row_id, chat messages) of one evaluation row."""
T = TypeVar("T")


@dataclass(frozen=True)
class PairedSettings:
    """How big and how fast one paired window is."""

    pairs: int = 500
    """The most pairs sent (each pair: one request to each variant)."""
    concurrency: int = 2
    """Pairs in flight at once = requests in flight per variant."""
    max_tokens: int = 16
    time_limit_s: float = 120.0
    """No new pair starts after this many seconds."""
    request_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.pairs < 1 or self.concurrency < 1 or self.max_tokens < 1:
            raise ValueError(f"pairs, concurrency and max_tokens must be >= 1: {self}")
        if not (self.time_limit_s > 0 and self.request_timeout_s > 0):
            raise ValueError(f"time_limit_s and request_timeout_s must be > 0: {self}")


@dataclass(frozen=True)
class PairedResult:
    """What one window sent: its records file and how far it got."""

    records: Path
    pairs: int
    """Complete pairs written (both halves ended)."""
    requested: int
    """Pairs it would have sent without the time limit."""
    duration_s: float

    @property
    def stopped_early(self) -> bool:
        return self.pairs < self.requested


def run_paired(
    endpoints: Mapping[str, str],
    api_key: str,
    model: str,
    rows: Sequence[Row],
    out_path: Path,
    settings: PairedSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> PairedResult:
    """Send the first `settings.pairs` rows to both variants; one record per half to out_path.

    `endpoints` maps "stable" and "canary" to their direct base URLs. Raises PairedWindowError
    when one is missing or not on loopback (with `transport` given, the URL is not dialled
    and any host is accepted: tests).
    """
    urls = {v: _checked_url(endpoints, v, allow_any=transport is not None) for v in VARIANTS}
    chosen = list(rows[: settings.pairs])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with out_path.open("w", encoding="utf-8") as out:
        window = _Window(urls, api_key, model, settings, out)
        pairs = _run_sync(window.run(chosen, transport))
    return PairedResult(records=out_path, pairs=pairs, requested=len(chosen),
                        duration_s=round(time.monotonic() - start, 3))  # fmt: skip


def pair_order(index: int) -> tuple[str, str]:
    """Which variant's request of pair `index` is sent first: alternating, stable first."""
    return VARIANTS if index % 2 == 0 else (VARIANTS[1], VARIANTS[0])


class _Window:
    def __init__(
        self, urls: Mapping[str, str], api_key: str, model: str, settings: PairedSettings,
        out: TextIO,
    ) -> None:  # fmt: skip
        self.urls, self.model, self.settings, self.out = urls, model, settings, out
        self.api_key = api_key
        self.written = 0

    async def run(self, rows: list[Row], transport: httpx.AsyncBaseTransport | None) -> int:
        limits = httpx.Limits(max_connections=2 * self.settings.concurrency)
        timeout = httpx.Timeout(self.settings.request_timeout_s)
        deadline = time.monotonic() + self.settings.time_limit_s
        queue: Iterator[tuple[int, Row]] = iter(enumerate(rows))
        async with httpx.AsyncClient(limits=limits, timeout=timeout, transport=transport) as c:

            async def worker() -> None:
                for index, row in queue:  # a shared iterator: each pair is taken once
                    if time.monotonic() >= deadline:
                        return
                    await self._pair(c, index, row)

            await asyncio.gather(*(worker() for _ in range(self.settings.concurrency)))
        return self.written

    async def _pair(self, client: httpx.AsyncClient, index: int, row: Row) -> None:
        pair_id = uuid.uuid4().hex
        first, second = pair_order(index)
        task = asyncio.create_task(self._send(client, first, row, pair_id))
        await asyncio.sleep(0)  # let the first half start before the second
        halves = [await self._send(client, second, row, pair_id), await task]
        for record in sorted(halves, key=lambda r: r["variant"]):
            self.out.write(json.dumps(record) + "\n")
        self.out.flush()
        self.written += 1

    async def _send(
        self, client: httpx.AsyncClient, variant: str, row: Row, pair_id: str
    ) -> RequestRecord:
        row_id, messages = row
        request_id = PAIRED_REQUEST_PREFIX + uuid.uuid4().hex
        headers = {"X-Request-ID": request_id, "Accept-Encoding": "identity"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = chat_body(self.model, [dict(m) for m in messages], self.settings.max_tokens, True)
        ts, start = time.time(), time.perf_counter()
        got = _Stream(start)
        status, version = 0, ""
        try:
            async with client.stream(
                "POST", f"{self.urls[variant]}/v1/chat/completions", json=body, headers=headers
            ) as resp:
                status = resp.status_code
                version = resp.headers.get(MODEL_VERSION_HEADER, "")
                if status == 200:
                    async for line in resp.aiter_lines():
                        got.line(line)
                else:
                    got.error = http_error(status, await resp.aread(), self.api_key)
        except httpx.HTTPError as exc:
            got.error = f"{'stream broken' if status else 'no response'}: {type(exc).__name__}"
        latency_ms = (time.perf_counter() - start) * 1000
        if got.error is None and not got.done:
            got.error = "stream ended without [DONE]"
        ok = got.error is None
        return RequestRecord(
            ts=ts, variant=variant, model_version=version, status=status, ok=ok,
            latency_ms=round(latency_ms, 3),
            ttft_ms=None if got.first_ms is None else round(got.first_ms, 3),
            prompt=_last_user(messages), answer=None,
            completion="".join(got.texts) if ok else "",
            request_id=request_id, error=got.error, origin="paired", pair_id=pair_id,
            row_id=row_id, itl_ms=[round(g, 3) for g in got.gaps] if ok else None,
            finish_reason=got.finish if ok else None,
        )  # fmt: skip


class _Stream:
    """Arrival times of one SSE stream's content chunks, as its lines come in."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.texts: list[str] = []
        self.gaps: list[float] = []
        self.first_ms: float | None = None
        self.finish: str | None = None
        self.done = False
        self.error: str | None = None
        self._last: float | None = None

    def line(self, line: str) -> None:
        event = parse_sse_line(line)
        if event is None or self.error is not None or self.done:
            return
        if event.error is not None:
            self.error = event.error
            return
        self.done = event.done
        if event.finish_reason is not None:
            self.finish = event.finish_reason
        if event.content:
            now = time.perf_counter()
            if self._last is None:
                self.first_ms = (now - self.start) * 1000
            else:
                self.gaps.append((now - self._last) * 1000)
            self._last = now
            self.texts.append(event.content)


def _last_user(messages: Sequence[Mapping[str, str]]) -> str:
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return str(users[-1]) if users else ""


def _checked_url(endpoints: Mapping[str, str], variant: str, *, allow_any: bool) -> str:
    url = endpoints.get(variant)
    if not url:
        raise PairedWindowError(
            f"the paired window needs the {variant}'s direct endpoint and the target gave "
            f"{sorted(endpoints)}; is the {variant} deployed (target.status())?"
        )
    host = urlsplit(url).hostname or ""
    if not (allow_any or _loopback(host)):
        raise PairedWindowError(
            f"the {variant}'s endpoint {url} is not on loopback: the paired window only "
            "sends to 127.0.0.0/8 or ::1 (run the pipeline next to the servers, or disable it)"
        )
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from a thread that already runs an event loop (then in a new one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="paired-window")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]
