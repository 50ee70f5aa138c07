"""CaptureLogSource on records made by the serving capture code itself (build_record)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from serving.capture import Exchange, build_record
from validation.golden import Example
from validation.metrics.base import Metric, NoDataError
from validation.metrics.capture_log import CaptureLogSource, read_capture

GOLDEN = [Example("1+1", "2"), Example("2+2", "4"), Example("3+3", "6")]
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def captured(
    variant: str,
    prompt: str,
    completion: str,
    *,
    status: int = 200,
    at: float = T0,
    latency_s: float = 0.05,
    stream: bool = False,
) -> dict[str, Any]:
    """A record exactly as the serving middleware writes it."""
    request = {"model": "tiny-chat", "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body = (
            b'data: {"choices": [{"delta": {"content": "'
            + completion.encode()
            + b'"}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
        )
    else:
        body = json.dumps({"choices": [{"message": {"content": completion}}]}).encode()
    ex = Exchange(
        request_id="r",
        variant=variant,
        model_version="3",
        method="POST",
        path="/v1/chat/completions",
        started_at=at,
        request_body=json.dumps(request).encode(),
        status=status,
        response_body=body,
        streaming=stream,
        latency_s=latency_s,
        ttft_s=0.01 if stream else None,
    )
    return build_record(ex, str)


def write(directory: Path, name: str, records: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_quality_is_exact_match_on_golden_prompts_per_variant(tmp_path: Path) -> None:
    write(tmp_path, "capture-canary-h-1.jsonl", [
        captured("canary", "1+1", "2"), captured("canary", "2+2", " 4 "),
        captured("canary", "3+3", "6 apples"), captured("canary", "not golden", "x"),
        captured("canary", "1+1", "", status=500),
    ])  # fmt: skip
    write(tmp_path, "capture-stable-h-1.jsonl", [captured("stable", "1+1", "2")])
    source = CaptureLogSource(tmp_path, GOLDEN, clock=lambda: T0 + 10)
    quality = source.query(Metric.QUALITY, "canary", 60)
    assert (quality.successes, quality.failures) == (2, 1)  # "6 apples" is wrong; 5xx excluded
    assert source.query(Metric.QUALITY, "stable", 60).successes == 1
    errors = source.query(Metric.ERRORS, "canary", 60)
    assert (errors.successes, errors.failures) == (4, 1)


def test_latency_ttft_window_and_rotated_files(tmp_path: Path) -> None:
    write(tmp_path, "capture-canary-h-1.20260101T000000Z.jsonl",
          [captured("canary", "1+1", "2", at=T0 - 3600, latency_s=9.0)])  # fmt: skip
    write(tmp_path, "capture-canary-h-1.jsonl", [
        captured("canary", "1+1", "2", latency_s=0.04, stream=True),
        captured("canary", "2+2", "4", latency_s=0.06),
    ])  # fmt: skip
    source = CaptureLogSource(tmp_path, GOLDEN, clock=lambda: T0 + 10)
    latency = source.query("latency", "canary", 60)
    assert latency.values is not None
    assert sorted(latency.values) == [40.0, 60.0]
    assert source.query("latency", "canary", 7200).n == 3
    ttft = source.query("ttft", "canary", 60)
    assert ttft.values is not None
    assert list(ttft.values) == [10.0]


def test_no_records_no_golden_and_unsupported(tmp_path: Path) -> None:
    write(tmp_path, "c.jsonl", [captured("stable", "1+1", "2")])
    source = CaptureLogSource(tmp_path, [], clock=lambda: T0)
    with pytest.raises(NoDataError, match="no golden prompts given"):
        source.query("quality", "stable", 60)
    with pytest.raises(NoDataError):
        source.query("errors", "canary", 60)
    with pytest.raises(Exception, match="cannot measure"):
        source.query("tokens_per_s", "stable", 60)
    assert source.is_online()
    assert not CaptureLogSource(tmp_path / "none").is_online()
    with pytest.raises(NoDataError):
        CaptureLogSource(tmp_path / "none").query("errors", "canary", 60)


def test_frame_reloads_when_files_change_and_skips_torn_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", [captured("canary", "1+1", "2")])
    source = CaptureLogSource(tmp_path, GOLDEN, clock=lambda: T0)
    assert len(source.frame()) == 1
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(captured("canary", "2+2", "5")) + "\n" + '{"torn": tr')
    frame = source.frame("canary")
    assert list(frame["completion"]) == ["2", "5"]
    assert frame["ts"].iloc[0] == pytest.approx(T0)
    assert list(read_capture([path])["prompt"]) == ["1+1", "2+2"]
