"""Pure ASGI middleware that vLLM loads with `--middleware serving.middleware.CanaryflowMiddleware`.

Per HTTP request it:
- takes `X-Request-ID` from the request (or makes one), passes it down (vLLM uses it as its
  own request id) and returns it;
- adds `X-Canaryflow-Variant` and `X-Canaryflow-Model-Version` to every response;
- answers 503 on /health and /ping until the launcher's ready file exists (after warmup);
- captures POSTs to the capture paths (streaming too) into a `CaptureSink`, off the event loop;
- refuses malformed and hostile requests with a 4xx before vLLM sees them (`RequestGuard`,
  innermost, so capture records its answers too).

vLLM instantiates it as `CanaryflowMiddleware(app)`: settings then come from the
environment. Tests pass settings and a sink (e.g. `MemorySink`) to the constructor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from serving.capture import Exchange, RegexRedactor
from serving.capture_sink import DROP_REASONS, CaptureSink, JsonlSink, NullSink
from serving.request_guard import GuardLimits, RequestGuard
from serving.settings import MiddlewareSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
VARIANT_HEADER = "x-canaryflow-variant"
MODEL_VERSION_HEADER = "x-canaryflow-model-version"
WARMUP_HEADER = "x-canaryflow-warmup"
HEALTH_PATHS = frozenset({"/health", "/ping"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = logging.getLogger("canaryflow.middleware")


def own_logging() -> None:
    """Give the `canaryflow` loggers a level and a handler of their own in the server.

    vLLM's API server imports `model_hosting_container_standards`, which sets the ROOT
    logger to ERROR (its LOG_LEVEL default): inherited, every capture warning (a full disk,
    a full queue) would be dropped silently. Idempotent; tests that pass settings skip it.
    """
    logger = logging.getLogger("canaryflow")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


class CanaryflowMiddleware:
    """Request id, variant headers, readiness gate and capture around the vLLM app."""

    def __init__(
        self,
        app: ASGIApp,
        settings: MiddlewareSettings | None = None,
        sink: CaptureSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        limits: GuardLimits | None = None,
    ) -> None:
        from_env = settings is None
        self.app: ASGIApp = RequestGuard(app, limits)
        self.settings = settings if settings is not None else MiddlewareSettings()
        self.sink = sink if sink is not None else make_sink(self.settings)
        self._clock, self._wall = clock, wall_clock
        self._ready = self.settings.ready_file is None
        self._capture_paths = frozenset(self.settings.capture_paths)
        if from_env:
            own_logging()
            register_metrics(self.sink)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope = _with_request_header(scope, request_id)
        extra = [
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
            (VARIANT_HEADER.encode(), self.settings.variant.encode()),
            (MODEL_VERSION_HEADER.encode(), self.settings.model_version.encode()),
        ]
        if scope["path"] in HEALTH_PATHS and not self.is_ready():
            await _send_json(send, 503, {"status": "warming up"}, extra)
            return
        if not self._should_capture(scope):
            await self.app(scope, receive, _with_headers(send, extra))
            return
        await self._captured(scope, receive, send, extra, request_id)

    def is_ready(self) -> bool:
        """True once the ready file exists (or when no ready file is configured)."""
        if not self._ready and self.settings.ready_file is not None:
            self._ready = self.settings.ready_file.exists()
        return self._ready

    def _should_capture(self, scope: Scope) -> bool:
        if scope.get("method") != "POST" or scope["path"] not in self._capture_paths:
            return False
        # The launcher's warmup is not traffic; the header counts only before ready.
        return self.is_ready() or _header(scope, WARMUP_HEADER) is None

    async def _captured(
        self, scope: Scope, receive: Receive, send: Send, extra: list[Any], request_id: str
    ) -> None:
        ex = Exchange(
            request_id=request_id,
            variant=self.settings.variant,
            model_version=self.settings.model_version,
            method=str(scope.get("method")),
            path=str(scope["path"]),
            started_at=self._wall(),
        )
        start = self._clock()
        request, response = (
            _Buffer(self.settings.capture_max_body_bytes),
            _Buffer(self.settings.capture_max_body_bytes),
        )

        async def tee_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request.add(message.get("body", b""))
            return message

        async def tee_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.status = int(message["status"])
                ex.streaming = _is_event_stream(message.get("headers", []))
                message = _add_headers(message, extra)
            elif message["type"] == "http.response.body" and message.get("body"):
                if ex.ttft_s is None and ex.streaming:
                    ex.ttft_s = self._clock() - start
                response.add(message["body"])
            await send(message)

        try:
            await self.app(scope, tee_receive, tee_send)
        except BaseException as exc:
            ex.error = type(exc).__name__
            ex.status = ex.status or 500
            raise
        finally:
            ex.latency_s = self._clock() - start
            ex.request_body, ex.request_truncated = request.value(), request.truncated
            ex.response_body, ex.response_truncated = response.value(), response.truncated
            self._submit(ex)

    def _submit(self, ex: Exchange) -> None:
        try:
            self.sink.submit(ex)
        except Exception:  # capture must never fail a request
            log.exception("capture: sink refused a record")


class _Buffer:
    """Keeps the first `limit` bytes of a body."""

    def __init__(self, limit: int) -> None:
        self._parts: list[bytes] = []
        self._size, self._limit = 0, limit
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self._limit - self._size
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        if chunk:
            self._parts.append(bytes(chunk))
            self._size += len(chunk)

    def value(self) -> bytes:
        return b"".join(self._parts)


def make_sink(settings: MiddlewareSettings) -> CaptureSink:
    """The JSONL sink the settings describe, or a null sink when capture is off."""
    if settings.capture_dir is None:
        return NullSink()
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
    return JsonlSink(
        settings.capture_dir,
        RegexRedactor(settings.redact_patterns, settings.redact_replacement),
        stem=f"capture-{settings.variant}-{host}-{os.getpid()}",
        max_bytes=settings.capture_max_bytes,
        backups=settings.capture_backups,
        min_free_bytes=settings.capture_min_free_bytes,
        queue_size=settings.capture_queue_size,
    )


def register_metrics(sink: CaptureSink) -> None:
    """Expose `canaryflow_capture_records_total{outcome}` on vLLM's /metrics when possible."""
    try:
        from prometheus_client.core import REGISTRY, CounterMetricFamily
    except ImportError:
        return

    class _CaptureCollector:
        def collect(self) -> Any:
            stats = sink.stats()
            family = CounterMetricFamily(
                "canaryflow_capture_records", "Captured records by outcome.", labels=["outcome"]
            )
            family.add_metric(["written"], stats.get("written", 0))
            for reason in DROP_REASONS:
                family.add_metric([f"dropped_{reason}"], stats.get(reason, 0))
            yield family

    # ValueError: already registered by an earlier instance in this process.
    with contextlib.suppress(ValueError):
        REGISTRY.register(_CaptureCollector())


def _request_id(scope: Scope) -> str:
    given = _header(scope, REQUEST_ID_HEADER)
    if given is not None and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def _header(scope: Scope, name: str) -> str | None:
    key = name.encode()
    for k, v in scope.get("headers", []):
        if k.lower() == key:
            return bytes(v).decode("latin-1")
    return None


def _with_request_header(scope: Scope, request_id: str) -> Scope:
    key = REQUEST_ID_HEADER.encode()
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != key]
    return {**scope, "headers": [*headers, (key, request_id.encode())]}


def _add_headers(message: Message, extra: list[Any]) -> Message:
    names = {k for k, _ in extra}
    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
    return {**message, "headers": kept + extra}


def _with_headers(send: Send, extra: list[Any]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = _add_headers(message, extra)
        await send(message)

    return wrapped


def _is_event_stream(headers: list[Any]) -> bool:
    for k, v in headers:
        if k.lower() == b"content-type":
            return bytes(v).startswith(b"text/event-stream")
    return False


async def _send_json(send: Send, status: int, body: dict[str, Any], extra: list[Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": payload})
