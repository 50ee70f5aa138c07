"""The request guard against a fake app: what it refuses, what it replays untouched."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from serving.capture_sink import MemorySink
from serving.middleware import CanaryflowMiddleware
from serving.request_guard import GuardLimits, RequestGuard
from serving.settings import MiddlewareSettings

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
GOOD = b'{"model": "m", "messages": [{"role": "user", "content": "12+35"}]}'


class EchoApp:
    """Answers 200 with the body it received; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"".join(parts)})


def call(
    app: Any,
    body: bytes = GOOD,
    path: str = CHAT,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    chunk: int = 7,
    disconnect: bool = False,
) -> tuple[int, bytes, int]:
    """(status, body, how many receive() calls) for one request sent in `chunk`-byte parts."""
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        if disconnect and received > 1:
            return {"type": "http.disconnect"}
        piece = pieces.pop(0) if pieces else b""
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw}
    asyncio.run(app(scope, receive, send))
    if not sent:
        return 0, b"", received
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), received


def error(body: bytes) -> dict[str, Any]:
    err = json.loads(body)["error"]
    assert err["type"] == "invalid_request_error"
    assert isinstance(err["message"], str)
    assert err["message"]
    return dict(err)


def test_a_good_body_reaches_the_app_byte_for_byte() -> None:
    app = EchoApp()
    assert call(RequestGuard(app), GOOD) == (200, GOOD, len(GOOD) // 7 + 1)
    assert app.calls == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"model": "m", "messages": [{"content": "\xff\xfe"}]}', "not valid UTF-8 (byte 41"),
        (b"{not json", "not valid JSON: Expecting property name"),
        (GOOD[:-3], "not valid JSON"),
        (GOOD + b" trailing", "Extra data"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"max_tokens": 1' + b"0" * 5000 + b"}", "cannot hold"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        (b'"hi"', "got a string"),
        (b"42", "got a number"),
        (b"null", "got null"),
        (b"true", "got a boolean"),
    ],
)
def test_bodies_vllm_mishandles_get_400_with_a_reason(body: bytes, says: str) -> None:
    app = EchoApp()
    status, out, _ = call(RequestGuard(app), body)
    assert status == 400
    assert says in error(out)["message"]
    assert error(out)["code"] == 400
    assert app.calls == 0


def test_a_non_json_content_type_is_named_in_the_message() -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, out, _ = call(RequestGuard(EchoApp()), b"model=m", headers=form)
    assert status == 400
    assert (
        "sent as 'application/x-www-form-urlencoded': send JSON as application/json"
        in (error(out)["message"])
    )


def test_utf16_and_a_bom_pass_as_vllm_accepts_them() -> None:
    text = json.loads(GOOD)
    for body in (json.dumps(text).encode("utf-16"), b"\xef\xbb\xbf" + GOOD):
        assert call(RequestGuard(EchoApp()), body)[0] == 200


def test_empty_and_multipart_bodies_and_gets_pass_untouched() -> None:
    app = EchoApp()
    guard = RequestGuard(app)
    assert call(guard, b"")[0] == 200
    form = {"Content-Type": "multipart/form-data; boundary=x"}
    assert call(guard, b"--x\r\n\xff", headers=form)[0] == 200
    assert call(guard, b"", path="/v1/models", method="GET")[0] == 200
    assert app.calls == 3


def test_a_declared_oversize_body_gets_413_unread() -> None:
    app = EchoApp()
    limits = GuardLimits(max_body_bytes=1024)
    status, out, received = call(
        RequestGuard(app, limits), b"x" * 2000, headers={"Content-Length": "2000"}
    )
    assert (status, received, app.calls) == (413, 0, 0)
    assert error(out)["param"] == "body"
    assert "2000 bytes; at most 1024" in error(out)["message"]


def test_an_undeclared_oversize_body_is_read_only_to_the_limit() -> None:
    limits = GuardLimits(max_body_bytes=1024)
    status, out, received = call(RequestGuard(EchoApp(), limits), b"x" * 5000, chunk=100)
    assert (status, received) == (413, 11)
    assert "more than 1024 bytes" in error(out)["message"]


def test_a_client_that_goes_away_gets_nothing_and_the_app_is_not_called() -> None:
    app = EchoApp()
    assert call(RequestGuard(app), GOOD, disconnect=True)[0] == 0
    assert app.calls == 0


def test_a_value_vllm_answers_with_500_gets_400_through_the_guard() -> None:
    body = json.dumps({"model": "m", "prompt": "1+1", "top_k": 10**30}).encode()
    status, out, _ = call(RequestGuard(EchoApp()), body, path=COMPLETIONS)
    assert (status, error(out)["param"]) == (400, "top_k")


@pytest.mark.parametrize("path", ["/scale_elastic_ep", "/is_scaling_elastic_ep"])
def test_operator_routes_are_not_served(path: str) -> None:
    app = EchoApp()
    status, out, _ = call(RequestGuard(app), b'{"new_data_parallel_size": 2}', path=path)
    assert (status, app.calls) == (404, 0)
    assert error(out)["code"] == 404


def test_the_sequence_limit_comes_from_the_limits() -> None:
    body = json.dumps({"model": "m", "prompt": ["a", "b"], "n": 3}).encode()
    guard = RequestGuard(EchoApp(), GuardLimits(max_sequences=5))
    status, out, _ = call(guard, body, path=COMPLETIONS)
    assert (status, error(out)["param"]) == (400, "n")
    assert "at most 5 per request" in error(out)["message"]


def test_the_middleware_guards_and_captures_the_refusal() -> None:
    sink = MemorySink()
    app = EchoApp()
    settings = MiddlewareSettings(variant="canary", model_version="3")
    mw = CanaryflowMiddleware(app, settings, sink)
    status, out, _ = call(mw, b"{bad")
    assert (status, app.calls) == (400, 0)
    assert "not valid JSON" in error(out)["message"]
    assert sink.records[0]["status"] == 400
    assert call(mw, GOOD)[0:2] == (200, GOOD)
