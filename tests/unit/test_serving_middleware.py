"""The ASGI middleware against a fake app: request ids, headers, readiness gate, capture."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.capture import Exchange, RegexRedactor
from serving.capture_sink import MemorySink
from serving.middleware import CanaryflowMiddleware
from serving.settings import MiddlewareSettings

CHAT = "/v1/chat/completions"


class FakeApp:
    """Answers like vLLM: JSON or SSE; remembers the headers it was called with."""

    def __init__(self, stream: bool = False, status: int = 200, fail: bool = False) -> None:
        self.stream, self.status, self.fail = stream, status, fail
        self.seen_headers: dict[str, str] = {}
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        self.seen_headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        while (await receive()).get("more_body"):
            pass
        if self.fail:
            raise RuntimeError("engine died")
        ctype = b"text/event-stream" if self.stream else b"application/json"
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", ctype)]})  # fmt: skip
        for chunk in self._chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _chunks(self) -> Iterator[bytes]:
        if not self.stream:
            yield json.dumps({
                "choices": [{"message": {"content": "47"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2},
            }).encode()  # fmt: skip
            return
        for text in ["4", "7"]:
            delta = {"choices": [{"delta": {"content": text}, "finish_reason": None}]}
            yield f"data: {json.dumps(delta)}\n\n".encode()
        yield b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
        yield b"data: [DONE]\n\n"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


def settings(**kw: Any) -> MiddlewareSettings:
    base: dict[str, Any] = {"variant": "canary", "model_version": "3"}
    return MiddlewareSettings(**{**base, **kw})


def call(
    mw: CanaryflowMiddleware,
    path: str = CHAT,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    body: bytes = b'{"model": "m", "messages": [{"role": "user", "content": "12+35"}]}',
) -> tuple[int, dict[str, str], bytes]:
    sent: list[Any] = []
    parts = [body[: len(body) // 2], body[len(body) // 2 :]]

    async def receive() -> dict[str, Any]:
        chunk = parts.pop(0) if parts else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    async def send(message: Any) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw}
    asyncio.run(mw(scope, receive, send))
    start = sent[0]
    out = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], out, b"".join(m.get("body", b"") for m in sent[1:])


def test_request_id_is_made_passed_down_and_returned() -> None:
    app = FakeApp()
    status, headers, _ = call(CanaryflowMiddleware(app, settings(), MemorySink()))
    assert status == 200
    assert len(headers["x-request-id"]) == 32
    assert app.seen_headers["x-request-id"] == headers["x-request-id"]


def test_given_request_id_is_kept_and_a_hostile_one_replaced() -> None:
    mw = CanaryflowMiddleware(FakeApp(), settings(), MemorySink())
    assert call(mw, headers={"X-Request-ID": "abc-1"})[1]["x-request-id"] == "abc-1"
    hostile = call(mw, headers={"X-Request-ID": "a b\r\nSet-Cookie: x"})[1]["x-request-id"]
    assert hostile != "a b\r\nSet-Cookie: x"
    assert len(hostile) == 32


def test_every_response_names_variant_and_model_version() -> None:
    mw = CanaryflowMiddleware(FakeApp(), settings(), MemorySink())
    _, headers, _ = call(mw, path="/v1/models", method="GET")
    assert headers["x-canaryflow-variant"] == "canary"
    assert headers["x-canaryflow-model-version"] == "3"


def test_health_is_503_until_the_ready_file_exists(tmp_path: Path) -> None:
    app = FakeApp()
    ready = tmp_path / "ready"
    mw = CanaryflowMiddleware(app, settings(ready_file=ready), MemorySink())
    status, headers, _ = call(mw, path="/health", method="GET")
    assert (status, app.calls) == (503, 0)
    assert headers["x-canaryflow-variant"] == "canary"
    ready.touch()
    assert call(mw, path="/health", method="GET")[0] == 200
    assert app.calls == 1


def test_chat_exchange_is_captured_with_tokens_latency_and_redaction() -> None:
    sink = MemorySink(RegexRedactor([r"\d+\+\d+"], "[X]"))
    mw = CanaryflowMiddleware(FakeApp(), settings(), sink, clock=Clock(), wall_clock=lambda: 0.0)
    call(mw, headers={"X-Request-ID": "r1"})
    (rec,) = sink.records
    assert rec["request_id"] == "r1"
    assert rec["variant"] == "canary"
    assert rec["model_version"] == "3"
    assert rec["status"] == 200
    assert rec["prompt"] == "[X]"
    assert rec["messages"] == [{"role": "user", "content": "[X]"}]
    assert rec["completion"] == "47"
    assert rec["finish_reason"] == "stop"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (9, 2)
    assert rec["latency_ms"] == 500.0
    assert rec["stream"] is False


def test_streaming_exchange_is_captured_whole() -> None:
    sink = MemorySink()
    mw = CanaryflowMiddleware(FakeApp(stream=True), settings(), sink, clock=Clock())
    _, _, body = call(mw)
    assert body.endswith(b"data: [DONE]\n\n")  # the client still gets every byte
    (rec,) = sink.records
    assert rec["stream"] is True
    assert rec["completion"] == "47"
    assert rec["finish_reason"] == "stop"
    assert rec["stream_chunks"] == 3
    assert rec["ttft_ms"] == 500.0


def test_app_failure_is_captured_and_still_raised() -> None:
    sink = MemorySink()
    with pytest.raises(RuntimeError):
        call(CanaryflowMiddleware(FakeApp(fail=True), settings(), sink))
    assert sink.records[0]["status"] == 500
    assert sink.records[0]["error"] == "RuntimeError"


def test_a_failing_sink_never_fails_the_request() -> None:
    class Broken:
        def submit(self, exchange: Exchange) -> None:
            raise OSError("disk gone")

        def stats(self) -> dict[str, int]:
            return {}

    assert call(CanaryflowMiddleware(FakeApp(), settings(), Broken()))[0] == 200


def test_only_posts_to_capture_paths_are_captured() -> None:
    sink = MemorySink()
    mw = CanaryflowMiddleware(FakeApp(), settings(), sink)
    call(mw, path="/v1/models", method="GET")
    call(mw, path="/tokenize")
    assert sink.records == []


def test_warmup_is_not_captured_before_ready_but_the_header_means_nothing_after(
    tmp_path: Path,
) -> None:
    sink = MemorySink()
    ready = tmp_path / "ready"
    mw = CanaryflowMiddleware(FakeApp(), settings(ready_file=ready), sink)
    call(mw, headers={"X-Canaryflow-Warmup": "1"})
    assert sink.records == []
    ready.touch()
    call(mw, headers={"X-Canaryflow-Warmup": "1"})
    assert len(sink.records) == 1


def test_bodies_beyond_the_limit_are_truncated_in_the_record_only() -> None:
    sink = MemorySink()
    mw = CanaryflowMiddleware(FakeApp(), settings(capture_max_body_bytes=1024), sink)
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    assert call(mw, body=big)[0] == 200
    assert sink.records[0]["truncated"] is True
    assert sink.records[0]["request_error"] == "request body is not a JSON object"


def test_capture_warnings_survive_a_root_logger_set_to_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """vLLM's server sets the root logger to ERROR; a full-disk warning must still show."""
    import logging

    from serving.middleware import own_logging

    root, ours = logging.getLogger(), logging.getLogger("canaryflow")
    saved = (root.level, ours.level, list(ours.handlers), ours.propagate)
    root.setLevel(logging.ERROR)
    try:
        own_logging()
        own_logging()  # idempotent: one handler
        assert len(ours.handlers) == 1
        logging.getLogger("canaryflow.capture").warning("capture: 1 record(s) dropped")
        assert "WARNING canaryflow.capture: capture: 1 record(s) dropped" in capsys.readouterr().err
    finally:
        root.setLevel(saved[0])
        ours.setLevel(saved[1])
        ours.handlers[:] = saved[2]
        ours.propagate = saved[3]
