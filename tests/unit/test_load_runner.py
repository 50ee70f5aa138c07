"""LoadProfile validation, the records summary, the wire parsing, and run_load's pre-flight."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from infra.load import LocustMissingError
from infra.load.prompts import PromptSource
from infra.load.records import RequestRecord, percentile, read_records, summarize
from infra.load.runner import LoadProfile, run_load
from infra.load.wire import chat_body, http_error, parse_completion, parse_stream


def record(variant: str, latency_ms: float, ok: bool = True, **kw: Any) -> RequestRecord:
    base = RequestRecord(
        ts=0.0, variant=variant, model_version="1", status=200 if ok else 500, ok=ok,
        latency_ms=latency_ms, ttft_ms=None, prompt="1+1", answer="2",
        completion="2" if ok else "", request_id="r", error=None if ok else "HTTP 500: x",
    )  # fmt: skip
    return RequestRecord(**{**base, **kw})  # type: ignore[typeddict-item]


def test_profile_defaults_and_round_trip() -> None:
    profile = LoadProfile()
    assert (profile.users, profile.stream, profile.requests) == (4, True, None)
    assert profile.prompts.kind == "synthetic"
    assert LoadProfile.model_validate_json(profile.model_dump_json()) == profile


@pytest.mark.parametrize(
    "bad",
    [
        {"users": 0},
        {"spawn_rate": 0},
        {"max_tokens": 0},
        {"requests": 0},
        {"max_duration_s": 0},
        {"request_timeout_s": -1},
        {"duration": 60},  # unknown field: a typo is an error, not a silent default
        {"prompts": {"kind": "replay"}},  # replay needs a path
    ],
)
def test_profile_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LoadProfile.model_validate(bad)


def test_profile_fields_are_documented() -> None:
    assert all(f.description for f in LoadProfile.model_fields.values())
    assert all(f.description for f in PromptSource.model_fields.values())


def test_summary_per_variant_uses_ok_latencies() -> None:
    stable = [10.0, 20.0, 30.0, 40.0]
    records = [record("stable", x) for x in stable] + [
        record("canary", 15.0, ttft_ms=5.0, model_version="2"),
        record("canary", 9999.0, ok=False, model_version="2"),
    ]
    summary = summarize(records)
    assert list(summary) == ["canary", "stable"]
    assert (summary["stable"].count, summary["stable"].failures) == (4, 0)
    assert summary["stable"].p50_ms == pytest.approx(np.percentile(stable, 50))
    assert summary["stable"].p95_ms == pytest.approx(np.percentile(stable, 95))
    assert summary["stable"].ttft_p50_ms is None
    canary = summary["canary"]
    assert (canary.count, canary.failures, canary.p95_ms, canary.ttft_p95_ms) == (2, 1, 15.0, 5.0)
    assert canary.model_versions == ["2"]


def test_percentile_edges() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0


def test_read_records_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps(record("stable", 1.0)) + '\n{"ts": 1')
    assert [r["variant"] for r in read_records(path)] == ["stable"]
    assert read_records(tmp_path / "absent.jsonl") == []


def sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


def delta(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


def test_stream_parsing() -> None:
    role = json.dumps({"choices": [{"delta": {"role": "assistant"}}]})
    assert parse_stream(sse(role, delta("4"), delta("2"), "[DONE]")) == ("42", None)
    assert parse_stream(sse(delta("4"))) == ("4", "stream ended without [DONE]")
    assert parse_stream(sse(json.dumps({"error": {"message": "boom"}})))[1] == (
        "stream carried an error event"
    )
    assert parse_stream(sse("{not json"))[1] == "stream carried a non-JSON event"


def test_completion_parsing_and_errors() -> None:
    ok = json.dumps({"choices": [{"message": {"role": "assistant", "content": "42"}}]})
    assert parse_completion(ok.encode()) == ("42", None)
    assert parse_completion(b'{"object": "error"}') == ("", "response is not a chat completion")
    assert http_error(401, b'{"error":\n "bad key sk-123"}', "sk-123") == (
        'HTTP 401: {"error": "bad key [REDACTED]"}'
    )
    body = chat_body("m", [{"role": "user", "content": "1+1"}], 8, stream=True)
    assert (body["temperature"], body["max_tokens"], body["stream"]) == (0, 8, True)


def test_missing_locust_is_named_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(LocustMissingError, match="install it"):
        run_load("http://127.0.0.1:9", "k", "m", LoadProfile(), tmp_path,
                 requests=1, locust_command=["/nonexistent/locust"])  # fmt: skip
    assert not any(tmp_path.iterdir())
