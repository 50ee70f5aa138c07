"""A server that costs next to nothing: the load generator benchmark's far end.

    taskset -c 1 python -m uvicorn bench.trivial_server:app --port 8124 --http httptools

A raw ASGI app (no framework) answering like the serving image does, as far as the
locustfile looks: POST /v1/chat/completions with a fixed one-chunk SSE stream (or a JSON
completion when not streamed) and the variant/model-version/request-id headers; GET
/v1/models and /health with 200. No model, no sleep: whatever rate Locust reaches against
it is Locust's own limit (as long as this server has a core of its own).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_CHUNK = json.dumps(
    {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "54"}, "finish_reason": None}],
    }
)
STREAM_BODY = f"data: {_CHUNK}\n\ndata: [DONE]\n\n".encode()
JSON_BODY = json.dumps(
    {
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "54"}, "finish_reason": "stop"}
        ],
        "usage": {"completion_tokens": 2},
    }
).encode()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = bool(message.get("more_body"))
    if scope["method"] == "POST":
        streamed = b'"stream": true' in body or b'"stream":true' in body
        payload, ctype = (
            (STREAM_BODY, b"text/event-stream") if streamed else (JSON_BODY, b"application/json")
        )
        await _reply(send, scope, payload, ctype)
    else:
        await _reply(send, scope, b'{"object": "list", "data": []}', b"application/json")


async def _reply(send: Send, scope: Scope, payload: bytes, ctype: bytes) -> None:
    request_id = dict(scope["headers"]).get(b"x-request-id", b"trivial")
    headers = [
        (b"content-type", ctype),
        (b"content-length", str(len(payload)).encode()),
        (b"x-canaryflow-variant", b"stable"),
        (b"x-canaryflow-model-version", b"1"),
        (b"x-request-id", request_id),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
