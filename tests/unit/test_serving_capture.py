"""Capture records (parsing, redaction) and the bounded JSONL sink (rotation, drops)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from serving.capture import Exchange, RegexRedactor, build_record, parse_sse
from serving.capture_sink import JsonlSink


def exchange(**kw: Any) -> Exchange:
    base: dict[str, Any] = {
        "request_id": "r1",
        "variant": "stable",
        "model_version": "2",
        "method": "POST",
        "path": "/v1/chat/completions",
        "started_at": 0.0,
        "status": 200,
        "request_body": json.dumps(
            {
                "model": "tiny-chat",
                "temperature": 0,
                "max_tokens": 8,
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "12+35"}]},
                ],
            }
        ).encode(),
        "response_body": json.dumps(
            {
                "choices": [{"message": {"content": "47"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2},
            }
        ).encode(),
    }
    return Exchange(**{**base, **kw})


def test_chat_record_keeps_what_analysis_needs() -> None:
    rec = build_record(exchange(latency_s=0.25), str)
    assert rec["prompt"] == "12+35"
    assert rec["messages"][0] == {"role": "system", "content": "be brief"}
    assert rec["completion"] == "47"
    assert rec["finish_reason"] == "stop"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (9, 2)
    assert rec["params"] == {"temperature": 0, "max_tokens": 8}
    assert rec["latency_ms"] == 250.0
    assert rec["ts"].startswith("1970-01-01T00:00:00")


def test_completions_record_uses_prompt_and_text() -> None:
    rec = build_record(
        exchange(
            path="/v1/completions",
            request_body=b'{"prompt": "1+1"}',
            response_body=b'{"choices": [{"text": "2", "finish_reason": "stop"}]}',
        ),
        str,
    )
    assert (rec["prompt"], rec["completion"], rec["messages"]) == ("1+1", "2", None)


def test_stream_record_joins_deltas_and_reads_usage_when_present() -> None:
    body = (
        b'data: {"choices": [{"delta": {"role": "assistant", "content": ""}}]}\n\n'
        b'data: {"choices": [{"delta": {"content": "4"}}]}\n\n'
        b'data: {"choices": [{"delta": {"content": "7"}, "finish_reason": "stop"}]}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}\n\n'
        b"data: [DONE]\n\n"
    )
    rec = build_record(exchange(streaming=True, response_body=body), str)
    assert rec["completion"] == "47"
    assert rec["finish_reason"] == "stop"
    assert rec["completion_tokens"] == 2
    assert rec["stream_chunks"] == 4


def test_error_response_and_broken_request_are_recorded_not_raised() -> None:
    rec = build_record(
        exchange(status=400, request_body=b"{nope", response_body=b'{"error": {"message": "x"}}'),
        str,
    )
    assert rec["request_error"]
    assert rec["prompt"] is None
    assert rec["response_error"] == '{"message": "x"}'
    assert rec["completion"] is None


def test_redaction_reaches_prompt_messages_completion_and_errors() -> None:
    redact = RegexRedactor([r"[\w.]+@[\w.]+", r"4\d"], "<r>")
    ex = exchange(
        request_body=b'{"messages": [{"role": "user", "content": "mail a.b@c.de"}]}',
        response_body=b'{"choices": [{"message": {"content": "47"}}], "error": "a@b.c"}',
    )
    rec = build_record(ex, redact)
    text = json.dumps(rec)
    assert "a.b@c.de" not in text
    assert "47" not in text
    assert "a@b.c" not in text
    assert rec["prompt"] == "mail <r>"
    assert rec["completion"] == "<r>"


def test_parse_sse_skips_done_comments_and_junk() -> None:
    body = b': keep-alive\n\ndata: {"a": 1}\n\ndata: nope\n\ndata: [DONE]\n\n'
    assert parse_sse(body) == [{"a": 1}]


def lines(directory: Path) -> list[dict[str, Any]]:
    return [
        json.loads(x) for p in sorted(directory.glob("*.jsonl")) for x in p.read_text().splitlines()
    ]


def test_sink_writes_redacted_lines(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, RegexRedactor([r"\d+\+\d+"]), stem="cap", min_free_bytes=0)
    sink.submit(exchange())
    assert sink.drain(5)
    (rec,) = lines(tmp_path)
    assert rec["prompt"] == "[REDACTED]"
    assert "12+35" not in (tmp_path / "cap.jsonl").read_text()
    assert sink.stats()["written"] == 1
    sink.close()


def test_sink_rotates_by_size_and_keeps_a_bounded_number_of_files(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, str, stem="cap", max_bytes=4096, backups=2, min_free_bytes=0)
    for i in range(60):
        sink.submit(exchange(request_id=f"r{i}"))
    assert sink.drain(10)
    files = sorted(tmp_path.glob("*.jsonl"))
    assert len(files) == 3  # the active file and two rotated ones
    assert all(p.stat().st_size <= 4096 for p in files)
    kept = [r["request_id"] for r in lines(tmp_path)]
    assert "r59" in kept
    assert "r0" not in kept
    assert sink.stats()["written"] == 60
    sink.close()


def test_sink_drops_with_a_counter_when_the_disk_is_nearly_full(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, str, min_free_bytes=1 << 20, free_bytes=lambda _: 1000)
    sink.submit(exchange())
    sink.submit(exchange())
    assert sink.drain(5)
    assert sink.stats()["dropped"] == 2
    assert sink.stats()["disk_full"] == 2
    assert lines(tmp_path) == []
    sink.close()


def test_sink_survives_a_device_that_is_full(tmp_path: Path) -> None:
    (tmp_path / "cap.jsonl").symlink_to("/dev/full")  # every write fails with ENOSPC
    sink = JsonlSink(tmp_path, str, stem="cap", min_free_bytes=0)
    sink.submit(exchange())
    assert sink.drain(5)
    assert sink.stats()["disk_full"] == 1
    assert sink.stats()["written"] == 0
    sink.close()


def test_sink_drops_when_its_queue_is_full_and_never_blocks(tmp_path: Path) -> None:
    release = threading.Event()

    def slow_free(_: Path) -> int:
        release.wait(5)
        return 1 << 40

    sink = JsonlSink(tmp_path, str, queue_size=1, free_bytes=slow_free)
    for _ in range(5):
        sink.submit(exchange())  # one in the writer, one queued, the rest dropped
    release.set()
    assert sink.drain(5)
    stats = sink.stats()
    assert stats["queue_full"] >= 3
    assert stats["written"] + stats["dropped"] == 5
    sink.close()


def test_unwritable_directory_is_a_counted_drop(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    sink = JsonlSink(blocker / "sub", str, min_free_bytes=0)
    sink.submit(exchange())
    assert sink.drain(5)
    assert sink.stats()["write_error"] == 1
    sink.close()
