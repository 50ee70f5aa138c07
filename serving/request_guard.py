"""Answer malformed and hostile requests with a 4xx before vLLM sees them.

`RequestGuard(app)` wraps the vLLM app (`CanaryflowMiddleware` puts it innermost, so capture
records what the guard answered). vLLM validates fields itself (types, max_tokens, unknown
model, prompt longer than the context, ...); the guard covers what it gets wrong:

- operator routes vLLM always mounts and no API key protects (`/scale_elastic_ep`,
  `/is_scaling_elastic_ep`; a JSON array there is a 500): 404, as if absent;
- a POST body over `max_body_bytes`: 413, read no further (vLLM buffers any size);
- a body that is not UTF-8, not JSON, nested too deep for the parser or with an integer
  too long to convert: 400 (vLLM answers `{"detail": "There was an error parsing the body"}`);
- a body that is JSON but not an object: 400 (same message on every route);
- values vLLM answers with a 500, or serves at great cost: 400 (`request_checks`).

Errors have vLLM's `ErrorResponse` shape, so clients parse one format:
`{"error": {"message", "type": "invalid_request_error", "param", "code": <status>}}`.
Empty and multipart bodies pass untouched (vLLM answers those well); a body that passes
is replayed to vLLM byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from serving.request_checks import Rejection, check_request, json_type

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPERATOR_PATHS = frozenset({"/scale_elastic_ep", "/is_scaling_elastic_ep"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class GuardLimits:
    """What one request may ask for; defaults fit the demo model and vLLM's own caps."""

    max_body_bytes: int = 16 << 20
    """Largest request body read; larger ones get 413."""
    max_sequences: int = 16384
    """Largest `n` x prompts per generation request (vLLM's own cap on `n` alone)."""


class RequestGuard:
    """ASGI wrapper: refuses what vLLM mishandles, replays the rest unchanged."""

    def __init__(self, app: ASGIApp, limits: GuardLimits | None = None) -> None:
        self.app = app
        self.limits = limits or GuardLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"])
        if path in OPERATOR_PATHS:
            await send_error(send, Rejection(404, f"{path} is not served here", None))
            return
        if scope.get("method") not in BODY_METHODS or _is_multipart(scope):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, self.limits.max_body_bytes)
            if body is None:  # the client went away
                return
            if body:
                check_body(path, body, self.limits, _header(scope, b"content-type"))
        except Rejection as rejection:
            await send_error(send, rejection)
            return
        await self.app(scope, replay(body, receive), send)


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None on disconnect; Rejection(413) past `limit` bytes."""
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


def check_body(
    path: str, body: bytes, limits: GuardLimits, content_type: str | None = None
) -> None:
    """Raise Rejection unless `body` is a JSON object that passes `check_request`."""
    try:
        value = json.loads(body)  # bytes: UTF-8/16/32 detected as FastAPI and vLLM do
    except ValueError as exc:
        raise Rejection(400, _unparsable(exc) + _content_type_hint(content_type)) from exc
    except RecursionError as exc:
        raise Rejection(400, "request body is nested too deeply to parse") from exc
    if not isinstance(value, dict):
        raise Rejection(400, f"request body must be a JSON object, got {json_type(value)}", "body")
    check_request(path, value, limits.max_sequences)


def _unparsable(exc: ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"request body is not valid UTF-8 (byte {exc.start}: {exc.reason})"
    if isinstance(exc, json.JSONDecodeError):
        return (
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno} (char {exc.pos})"
        )
    return f"request body has a value JSON cannot hold: {exc}"  # e.g. a 5000-digit integer


def _content_type_hint(content_type: str | None) -> str:
    if content_type and "json" not in content_type.lower():
        return f"; it is sent as {content_type[:80]!r}: send JSON as application/json"
    return "; send a JSON object encoded as UTF-8"


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields `body` once, then defers to `receive` (disconnect events)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


def error_body(rejection: Rejection) -> dict[str, Any]:
    """vLLM's ErrorResponse shape."""
    return {
        "error": {
            "message": rejection.message,
            "type": "invalid_request_error",
            "param": rejection.param,
            "code": rejection.status,
        }
    }


async def send_error(send: Send, rejection: Rejection) -> None:
    payload = json.dumps(error_body(rejection)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if rejection.status == 413:
        headers.append((b"connection", b"close"))  # the unread rest of the body is dropped
    await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _too_large(size: int, limit: int, at_least: bool = False) -> Rejection:
    seen = f"more than {limit}" if at_least else str(size)
    return Rejection(
        413, f"request body is {seen} bytes; at most {limit} bytes are accepted", "body"
    )


def _is_multipart(scope: Scope) -> bool:
    ctype = _header(scope, b"content-type") or ""
    return ctype.lower().startswith("multipart/")


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if bytes(k).lower() == name:
            return bytes(v).decode("latin-1").strip()
    return None
