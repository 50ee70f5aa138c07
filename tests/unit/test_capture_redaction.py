"""The DEFAULT redaction patterns keep e-mails, API keys and tokens out of the capture JSONL:
in prompts, system messages, completions (plain and streamed, a key split over chunks) and
errors, written by the sink the middleware makes from its default settings.

The secrets below are made up; each has the shape of the real thing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from serving.capture import Exchange, RegexRedactor
from serving.capture_sink import JsonlSink
from serving.middleware import CanaryflowMiddleware, make_sink
from serving.settings import DEFAULT_REDACT_PATTERNS, MiddlewareSettings

SECRETS = {
    "email": "jane.doe+ml@example.co.uk",
    "openai": "sk-proj-Q7x2Lm9Vb4Nc8Zr1Tt6Yw3Pk0Hs5Jd2Ga8Fe4Ru1",
    "anthropic": "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg",
    "huggingface": "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "bearer": "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "aws_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret": "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "github": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "env_line": "OPENAI_API_KEY=canary0bf5a1d0c2e94b7f",
    "password": "password: hunter2-Xq9",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXZhbHVl",
}
PLAIN = [
    "12+35",
    "what is 7*8? answer with a number",
    "bearer instruments pay the holder",
    "rename key_performance_indicators_list",
    "the token count was 12 tokens",
    "a task-force of 5",
]


def settings(tmp: Path) -> MiddlewareSettings:
    """Default settings (so the default patterns) with capture into `tmp`."""
    return MiddlewareSettings(variant="canary", model_version="3", capture_dir=tmp,
                              capture_min_free_bytes=0)  # fmt: skip


def written(tmp: Path) -> str:
    return "".join(p.read_text() for p in sorted(tmp.glob("*.jsonl")))


def records(tmp: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in written(tmp).splitlines()]


def chat(user: str, completion: str, system: str = "be brief") -> Exchange:
    body = {"model": "tiny-chat", "messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": [{"type": "text", "text": user}]},
    ]}  # fmt: skip
    answer = {"choices": [{"message": {"content": completion}, "finish_reason": "stop"}]}
    return Exchange(request_id="r1", variant="canary", model_version="3", method="POST",
                    path="/v1/chat/completions", started_at=0.0, status=200,
                    request_body=json.dumps(body).encode(),
                    response_body=json.dumps(answer).encode())  # fmt: skip


def capture(tmp: Path, *exchanges: Exchange) -> None:
    sink = make_sink(settings(tmp))
    assert isinstance(sink, JsonlSink)
    for ex in exchanges:
        sink.submit(ex)
    assert sink.drain(5)
    sink.close()


def test_the_middleware_defaults_are_the_default_patterns(tmp_path: Path) -> None:
    assert settings(tmp_path).redact_patterns == DEFAULT_REDACT_PATTERNS


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_a_secret_in_prompt_system_and_completion_is_redacted(tmp_path: Path, secret: str) -> None:
    capture(tmp_path, chat(f"12+35 and my key is {secret} ok", f"47, {secret}.",
                           system=f"auth {secret}"))  # fmt: skip
    text = written(tmp_path)
    assert secret not in text
    assert secret[-8:] not in text  # no tail of it either
    (rec,) = records(tmp_path)
    assert rec["prompt"].startswith("12+35 and my key is ")
    assert "[REDACTED]" in rec["prompt"]
    assert "[REDACTED]" in rec["messages"][0]["content"]
    assert rec["completion"].startswith("47, ")
    assert "[REDACTED]" in rec["completion"]


@pytest.mark.parametrize("text", PLAIN)
def test_ordinary_prompts_are_left_alone(tmp_path: Path, text: str) -> None:
    capture(tmp_path, chat(text, text))
    (rec,) = records(tmp_path)
    assert (rec["prompt"], rec["completion"]) == (text, text)


def test_completions_api_and_error_bodies_are_redacted(tmp_path: Path) -> None:
    key, mail = SECRETS["openai"], SECRETS["email"]
    completions = Exchange(request_id="r2", variant="canary", model_version="3",
                           method="POST", path="/v1/completions", started_at=0.0, status=200,
                           request_body=json.dumps({"prompt": f"use {key}"}).encode(),
                           response_body=json.dumps({"choices": [{"text": mail}]}).encode(),
                           error=f"upstream refused {key}")  # fmt: skip
    error = json.dumps({"error": {"message": f"bad {key}"}}).encode()
    failed = Exchange(request_id="r3", variant="canary", model_version="3", method="POST",
                      path="/v1/chat/completions", started_at=0.0, status=400,
                      request_body=b"{}", response_body=error)  # fmt: skip
    capture(tmp_path, completions, failed)
    text = written(tmp_path)
    assert key not in text
    assert mail not in text
    assert text.count("[REDACTED]") == 4


class StreamingApp:
    """Streams `pieces` as OpenAI chat deltas (SSE), like vLLM with stream=true."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
        for piece in self.pieces:
            delta = {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
            body = f"data: {json.dumps(delta)}\n\n".encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})
        done = b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
        await send({"type": "http.response.body", "body": done})


def stream_through_middleware(tmp: Path, prompt: str, pieces: list[str]) -> bytes:
    mw = CanaryflowMiddleware(StreamingApp(pieces), settings(tmp))
    request = json.dumps({"model": "tiny-chat", "stream": True,
                          "messages": [{"role": "user", "content": prompt}]}).encode()  # fmt: skip
    sent: list[Any] = []
    parts = [request]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": parts.pop(0) if parts else b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    asyncio.run(mw(scope, receive, send))
    sink = mw.sink
    assert isinstance(sink, JsonlSink)
    assert sink.drain(5)
    sink.close()
    return b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("name", ["openai", "huggingface", "aws_key_id", "email", "bearer"])
def test_a_secret_split_over_stream_chunks_is_redacted(tmp_path: Path, name: str) -> None:
    secret = SECRETS[name]
    third = len(secret) // 3
    pieces = ["47 ", secret[:third], secret[third : 2 * third], secret[2 * third :], " done"]
    got = stream_through_middleware(tmp_path, f"12+35 {secret}", pieces)
    assert b"[DONE]" in got  # the client still gets its whole stream
    text = written(tmp_path)
    assert secret not in text
    assert secret[-8:] not in text
    (rec,) = records(tmp_path)
    assert rec["stream"] is True
    assert rec["completion"] == "47 [REDACTED] done"
    assert rec["prompt"] == "12+35 [REDACTED]"


def test_a_custom_pattern_list_replaces_the_defaults(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, RegexRedactor([r"\d+\+\d+"], "<x>"), min_free_bytes=0)
    sink.submit(chat("12+35", "47"))
    assert sink.drain(5)
    sink.close()
    assert records(tmp_path)[0]["prompt"] == "<x>"
