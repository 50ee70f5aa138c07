"""One captured request/response pair, turned into a redacted JSONL record.

The middleware hands over raw bytes (`Exchange`); `build_record` parses the OpenAI request
and response (plain JSON or a server-sent-event stream), keeps what drift and quality
analysis need, and runs every free-text field through the redactor. Raw bodies are never
written. Pure functions: no I/O, no clocks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Redactor = Callable[[str], str]
RECORD_SCHEMA = 1


class RegexRedactor:
    """Replaces every match of any pattern; the configurable redaction hook."""

    def __init__(self, patterns: Iterable[str], replacement: str = "[REDACTED]") -> None:
        self._patterns = [re.compile(p) for p in patterns]
        self._replacement = replacement

    def __call__(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub(self._replacement, text)
        return text


@dataclass
class Exchange:
    """What the middleware saw of one HTTP exchange (bodies possibly truncated)."""

    request_id: str
    variant: str
    model_version: str
    method: str
    path: str
    started_at: float  # wall clock, seconds since the epoch
    request_body: bytes = b""
    request_truncated: bool = False
    status: int = 0
    response_body: bytes = b""
    response_truncated: bool = False
    streaming: bool = False
    latency_s: float = 0.0
    ttft_s: float | None = None
    error: str | None = None


def build_record(ex: Exchange, redact: Redactor) -> dict[str, Any]:
    """The JSONL record for `ex`; every prompt/completion string is already redacted."""
    record: dict[str, Any] = {
        "schema": RECORD_SCHEMA,
        "ts": datetime.fromtimestamp(ex.started_at, UTC).isoformat(),
        "request_id": ex.request_id,
        "variant": ex.variant,
        "model_version": ex.model_version,
        "method": ex.method,
        "path": ex.path,
        "status": ex.status,
        "latency_ms": round(ex.latency_s * 1000, 3),
        "ttft_ms": None if ex.ttft_s is None else round(ex.ttft_s * 1000, 3),
        "stream": ex.streaming,
        "truncated": ex.request_truncated or ex.response_truncated,
        "error": None if ex.error is None else redact(ex.error),
    }
    record.update(_request_fields(ex.request_body, redact))
    if ex.streaming:
        record.update(_stream_fields(ex.response_body, redact))
    else:
        record.update(_response_fields(ex.response_body, redact))
    return record


def _request_fields(body: bytes, redact: Redactor) -> dict[str, Any]:
    req = _json_object(body)
    fields: dict[str, Any] = {
        "model": None,
        "prompt": None,
        "messages": None,
        "params": {},
    }
    if req is None:
        fields["request_error"] = "request body is not a JSON object"
        return fields
    fields["model"] = req.get("model") if isinstance(req.get("model"), str) else None
    fields["params"] = {
        k: req[k]
        for k in ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stream")
        if isinstance(req.get(k), int | float | bool)
    }
    messages = req.get("messages")
    if isinstance(messages, list):
        kept = [_message(m, redact) for m in messages if isinstance(m, dict)]
        fields["messages"] = kept
        users = [m["content"] for m in kept if m["role"] == "user"]
        fields["prompt"] = users[-1] if users else None
    elif isinstance(req.get("prompt"), str):
        fields["prompt"] = redact(req["prompt"])
    return fields


def _message(message: dict[str, Any], redact: Redactor) -> dict[str, str]:
    role = message.get("role")
    return {"role": role if isinstance(role, str) else "", "content": redact(_text(message))}


def _text(message: dict[str, Any]) -> str:
    """Text of a chat message: a string, or the text parts of a content list."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def _response_fields(body: bytes, redact: Redactor) -> dict[str, Any]:
    resp = _json_object(body)
    if resp is None:
        return _completion_fields(None, None, None, None)
    error = resp.get("error")
    choice = _first_choice(resp)
    text = _choice_text(choice, "message")
    finish = choice.get("finish_reason") if choice else None
    fields = _completion_fields(redact(text) if text is not None else None, finish, resp, None)
    if error is not None:
        fields["response_error"] = redact(json.dumps(error)[:2000])
    return fields


def _stream_fields(body: bytes, redact: Redactor) -> dict[str, Any]:
    """Joins the deltas of an SSE stream; usage only if the stream carried it."""
    texts: list[str] = []
    finish: str | None = None
    usage_source: dict[str, Any] | None = None
    chunks = 0
    for event in parse_sse(body):
        chunks += 1
        choice = _first_choice(event)
        text = _choice_text(choice, "delta")
        if text:
            texts.append(text)
        if choice and isinstance(choice.get("finish_reason"), str):
            finish = choice["finish_reason"]
        if isinstance(event.get("usage"), dict):
            usage_source = event
    return _completion_fields(redact("".join(texts)), finish, usage_source, chunks)


def _completion_fields(
    completion: str | None, finish: Any, usage_source: dict[str, Any] | None, chunks: int | None
) -> dict[str, Any]:
    usage = usage_source.get("usage") if usage_source else None
    usage = usage if isinstance(usage, dict) else {}
    return {
        "completion": completion,
        "finish_reason": finish if isinstance(finish, str) else None,
        "prompt_tokens": _int_or_none(usage.get("prompt_tokens")),
        "completion_tokens": _int_or_none(usage.get("completion_tokens")),
        "stream_chunks": chunks,
    }


def parse_sse(body: bytes) -> list[dict[str, Any]]:
    """The JSON objects of the `data:` lines of a server-sent-event body (not [DONE])."""
    events: list[dict[str, Any]] = []
    for line in body.decode("utf-8", errors="replace").splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            continue
        obj = _json_object(payload.encode())
        if obj is not None:
            events.append(obj)
    return events


def _first_choice(obj: dict[str, Any]) -> dict[str, Any] | None:
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def _choice_text(choice: dict[str, Any] | None, key: str) -> str | None:
    """`choice[key].content` (chat) or `choice.text` (completions)."""
    if choice is None:
        return None
    inner = choice.get(key)
    if isinstance(inner, dict) and isinstance(inner.get("content"), str):
        return str(inner["content"])
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
