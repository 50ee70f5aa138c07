"""The OpenAI chat-completions wire format as the load generator speaks it. Pure functions.

Kept out of the locustfile so unit tests can use them without importing Locust (whose
import monkey-patches the test process with gevent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ERROR_CHARS = 200
# X-Request-ID prefix of every load-test request: drift checks leave synthetic traffic out.
SYNTHETIC_REQUEST_PREFIX = "cf-load-"


def is_synthetic(request_id: object) -> bool:
    """True for a request the load generator sent (by its X-Request-ID prefix)."""
    return isinstance(request_id, str) and request_id.startswith(SYNTHETIC_REQUEST_PREFIX)


def chat_body(
    model: str, messages: list[dict[str, str]], max_tokens: int, stream: bool
) -> dict[str, Any]:
    """A greedy (temperature 0) chat completion request."""
    return {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": stream,
    }


def parse_completion(raw: bytes) -> tuple[str, str | None]:
    """(message text, error or None) of a non-streamed chat completion body."""
    try:
        message = json.loads(raw)["choices"][0]["message"]
        return str(message.get("content") or ""), None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "", "response is not a chat completion"


def parse_stream(raw: bytes) -> tuple[str, str | None]:
    """(joined delta text, error or None) of an SSE body; it must end with `data: [DONE]`."""
    texts: list[str] = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return "".join(texts), None
        try:
            event = json.loads(payload)
        except ValueError:
            return "".join(texts), "stream carried a non-JSON event"
        if not isinstance(event, dict) or "error" in event:
            return "".join(texts), "stream carried an error event"
        texts.append(_delta_text(event))
    return "".join(texts), "stream ended without [DONE]"


@dataclass(frozen=True)
class StreamEvent:
    """One `data:` line of an SSE chat stream, parsed."""

    content: str = ""
    finish_reason: str | None = None
    done: bool = False  # the final `data: [DONE]`
    error: str | None = None  # not JSON, or an error event


def parse_sse_line(line: str) -> StreamEvent | None:
    """The event of one SSE line as it arrives; None for blank, comment or non-data lines."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return StreamEvent(done=True)
    try:
        event = json.loads(payload)
    except ValueError:
        return StreamEvent(error="stream carried a non-JSON event")
    if not isinstance(event, dict) or "error" in event:
        return StreamEvent(error="stream carried an error event")
    return StreamEvent(content=_delta_text(event), finish_reason=_finish_reason(event))


def stream_finish_reason(raw: bytes) -> str | None:
    """The last finish_reason an SSE body carried (None when none did)."""
    finish = None
    for line in raw.decode("utf-8", errors="replace").splitlines():
        event = parse_sse_line(line)
        if event is not None and event.finish_reason is not None:
            finish = event.finish_reason
    return finish


def completion_finish_reason(raw: bytes) -> str | None:
    """finish_reason of a non-streamed chat completion body (None when absent)."""
    try:
        return _finish_reason(json.loads(raw))
    except ValueError:
        return None


def _finish_reason(event: Any) -> str | None:
    choices = event.get("choices") if isinstance(event, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    reason = choices[0].get("finish_reason")
    return reason if isinstance(reason, str) else None


def _delta_text(event: dict[str, Any]) -> str:
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def http_error(status: int, body: bytes, secret: str) -> str:
    """`HTTP 401: <first words of the body>`, with `secret` blanked should a server echo it."""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    if secret:
        text = text.replace(secret, "[REDACTED]")
    return f"HTTP {status}: {text[:ERROR_CHARS]}"
