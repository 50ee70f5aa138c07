"""Locust users for canaryflow: OpenAI chat completions through the router, split by variant.

Started only by `infra.load.runner.run_load` (`python -m locust -f this_file --headless ...`),
never imported by the pipeline. It reads its `LoadJob` from the file named by
$CANARYFLOW_LOAD_JOB and the API key from $CANARYFLOW_LOAD_API_KEY.

Per request: POST /v1/chat/completions (temperature 0, small max_tokens, optionally
`stream: true`) with our own X-Request-ID; the response's X-Canaryflow-Variant names the
Locust entry (`chat [canary]`, so every CSV/JSON/HTML stat is per variant) and one JSONL
record is appended to the results file (fields: infra/load/records.py).

Stopping after a request count. Locust has no request limit of its own, so each request
first claims a ticket from a process-wide budget (one Locust process; greenlets switch only
on I/O, so plain integers need no lock). A user whose ticket is past the budget stops
(StopUser) without sending. The request that completes the budget schedules
`runner.quit()` shortly after (so Locust's CSV writer, which rewrites the CSV every
CSV_STATS_INTERVAL_SEC and not at exit, has seen every request); nothing budgeted is in
flight then, and Locust writes its CSV, HTML and JSON as on any normal end. `-t` bounds the
run time when the budget is not reached.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
import locust.stats
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser

from infra.load.job import API_KEY_ENV, JOB_ENV, LoadJob
from infra.load.prompts import Prompt, PromptOrder, read_prompts
from infra.load.records import UNKNOWN_VARIANT, RequestRecord
from infra.load.wire import (
    SYNTHETIC_REQUEST_PREFIX,
    chat_body,
    completion_finish_reason,
    http_error,
    parse_completion,
    parse_stream,
    stream_finish_reason,
)
from serving.middleware import MODEL_VERSION_HEADER, REQUEST_ID_HEADER, VARIANT_HEADER

_JOB = LoadJob.model_validate_json(Path(os.environ[JOB_ENV]).read_text(encoding="utf-8"))
_API_KEY = os.environ.pop(API_KEY_ENV, "")
_PROMPTS = read_prompts(_JOB.prompts_file)
_ORDER = PromptOrder(len(_PROMPTS), _JOB.seed)
_RESULTS = _JOB.results_file.open("a", encoding="utf-8", buffering=1)  # line-buffered
locust.stats.CSV_STATS_INTERVAL_SEC = 0.25  # type: ignore[assignment]  # declared int
_QUIT_DELAY_S = 0.6


class _Budget:
    """Tickets for the first `limit` requests; `finish` is True for the one completing them."""

    def __init__(self, limit: int | None) -> None:
        self.limit, self.claimed, self.done = limit, 0, 0

    def claim(self) -> int | None:
        if self.limit is not None and self.claimed >= self.limit:
            return None
        self.claimed += 1
        return self.claimed - 1

    def finish(self) -> bool:
        self.done += 1
        return self.done == self.limit


_BUDGET = _Budget(_JOB.requests)


@dataclass
class _Outcome:
    body: bytes = b""
    ttft_ms: float | None = None
    error: str | None = None  # the body could not be read


class ChatUser(FastHttpUser):
    """One closed-loop client: a chat completion, then the next, no think time."""

    wait_time = constant(0)
    network_timeout = _JOB.request_timeout_s
    connection_timeout = _JOB.request_timeout_s

    @task
    def chat(self) -> None:
        ticket = _BUDGET.claim()
        if ticket is None:
            raise StopUser()
        try:
            record = self._send(_PROMPTS[_ORDER.index(ticket)])
            _RESULTS.write(json.dumps(record) + "\n")
        finally:
            if _BUDGET.finish():
                gevent.spawn_later(_QUIT_DELAY_S, self.environment.runner.quit)

    def _send(self, prompt: Prompt) -> RequestRecord:
        request_id = SYNTHETIC_REQUEST_PREFIX + uuid.uuid4().hex
        headers = {"X-Request-ID": request_id, "Accept-Encoding": "identity"}  # raw SSE bytes
        if _API_KEY:
            headers["Authorization"] = f"Bearer {_API_KEY}"
        body = chat_body(_JOB.model, prompt.messages, _JOB.max_tokens, _JOB.stream)
        ts, start = time.time(), time.perf_counter()
        with self.client.post(
            "/v1/chat/completions", json=body, headers=headers, name="chat",
            stream=_JOB.stream, catch_response=True,
        ) as resp:  # fmt: skip
            status = int(resp.status_code or 0)
            got = _read_stream(resp, start) if _JOB.stream else _Outcome(body=resp.content or b"")
            latency_ms = (time.perf_counter() - start) * 1000
            variant = _header(resp, VARIANT_HEADER) or UNKNOWN_VARIANT
            completion, error = _judge(status, got, resp)
            # Rename and re-time the entry before Locust records it on leaving the block.
            resp.request_meta["name"] = f"chat [{variant}]"
            resp.request_meta["response_time"] = latency_ms
            resp.request_meta["response_length"] = len(got.body)
            if error is None:
                resp.success()
            else:
                resp.failure(error)
        return RequestRecord(
            ts=ts,
            variant=variant,
            model_version=_header(resp, MODEL_VERSION_HEADER) or "",
            status=status,
            ok=error is None,
            latency_ms=round(latency_ms, 3),
            ttft_ms=None if got.ttft_ms is None else round(got.ttft_ms, 3),
            prompt=prompt.prompt,
            answer=prompt.answer,
            completion=completion,
            request_id=_header(resp, REQUEST_ID_HEADER) or request_id,
            error=error,
            origin="load",
            finish_reason=_finish(got) if error is None else None,
        )


def _header(resp: Any, name: str) -> str | None:
    headers = resp.headers  # None when no response came
    value = headers.get(name) if headers is not None else None
    return str(value) if value else None


def _read_stream(resp: Any, start: float) -> _Outcome:
    """Reads the SSE body; TTFT is its first byte (the first chunk's arrival)."""
    out = _Outcome()
    if resp.headers is None:  # connection error: nothing to read
        return out
    try:
        first = next(resp.iter_content(chunk_size=1, decode_content=False), b"")
        if first:
            out.ttft_ms = (time.perf_counter() - start) * 1000
        out.body = first + b"".join(resp.iter_content(chunk_size=1 << 16, decode_content=False))
    except Exception as exc:  # a read timeout or reset mid-stream
        out.error = f"stream broken: {type(exc).__name__}"
    return out


def _finish(got: _Outcome) -> str | None:
    return stream_finish_reason(got.body) if _JOB.stream else completion_finish_reason(got.body)


def _judge(status: int, got: _Outcome, resp: Any) -> tuple[str, str | None]:
    """(completion, error or None): ok is a 200 with a complete, parsable body."""
    if status == 0:
        reason = getattr(resp, "error", None)
        return "", f"no response: {type(reason).__name__ if reason else 'connection failed'}"
    if status != 200:
        return "", http_error(status, got.body, _API_KEY)
    if got.error is not None:
        return "", got.error
    completion, error = parse_stream(got.body) if _JOB.stream else parse_completion(got.body)
    return (completion, None) if error is None else ("", error)


def _close_results(**_kwargs: Any) -> None:
    _RESULTS.close()


events.quitting.add_listener(_close_results)  # type: ignore[no-untyped-call]
