"""The paired window against httpx.MockTransport: same rows both sides, streamed timings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from infra.errors import PairedWindowError
from infra.load.paired import (
    PAIRED_REQUEST_PREFIX,
    PairedSettings,
    Row,
    pair_order,
    run_paired,
)
from infra.load.records import read_records

URLS = {"stable": "http://stable.test", "canary": "http://canary.test"}
ROWS: list[Row] = [(f"r{i}", ({"role": "user", "content": f"q{i}"},)) for i in range(6)]


def sse(*pieces: str, finish: str = "stop") -> list[bytes]:
    events = [{"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]}]
    events += [{"choices": [{"delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    events.append({"choices": [{"delta": {}, "finish_reason": finish}]})
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


class Server:
    """Answers each variant with its own text, one chunk every `gap_s`; logs every request."""

    def __init__(self, gap_s: float = 0.01, status: dict[str, int] | None = None) -> None:
        self.gap_s, self.status = gap_s, status or {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        variant = request.url.host.split(".")[0]
        body = json.loads(request.content)
        self.seen.append((variant, body["messages"][-1]["content"], dict(request.headers)))
        assert body["stream"] is True
        if self.status.get(variant, 200) != 200:
            return httpx.Response(self.status[variant], json={"error": "boom"})
        word = "yes" if variant == "stable" else "YES"
        finish = "length" if body["messages"][-1]["content"] == "q1" else "stop"
        chunks = sse(word[0], word[1:], finish=finish)

        async def stream() -> AsyncIterator[bytes]:
            for chunk in chunks:
                await asyncio.sleep(self.gap_s)
                yield chunk

        return httpx.Response(200, content=stream(), headers={"content-type": "text/event-stream",
                              "x-canaryflow-model-version": variant})  # fmt: skip


def run(server: Server, tmp_path: Path, **settings: float) -> tuple[list[dict[str, object]], int]:
    result = run_paired(URLS, "k3y", "m", ROWS, tmp_path / "paired.jsonl",
                        PairedSettings(**settings),  # type: ignore[arg-type]
                        transport=httpx.MockTransport(server.handle))  # fmt: skip
    return [dict(r) for r in read_records(result.records)], result.pairs


def test_both_variants_answer_the_same_rows_with_matching_pair_ids(tmp_path: Path) -> None:
    server = Server()
    records, pairs = run(server, tmp_path, pairs=6, concurrency=2)
    assert pairs == 6
    assert len(records) == 12
    by_variant = {v: sorted(str(r["row_id"]) for r in records if r["variant"] == v)
                  for v in ("stable", "canary")}  # fmt: skip
    assert by_variant["stable"] == by_variant["canary"] == [f"r{i}" for i in range(6)]
    for pair_id in {r["pair_id"] for r in records}:
        halves = [r for r in records if r["pair_id"] == pair_id]
        assert {h["variant"] for h in halves} == {"stable", "canary"}
        assert len({h["row_id"] for h in halves}) == 1
    assert all(r["origin"] == "paired" and r["ok"] for r in records)
    assert all(str(r["request_id"]).startswith(PAIRED_REQUEST_PREFIX) for r in records)
    assert {h["authorization"] for _, _, h in server.seen} == {"Bearer k3y"}
    assert {r["model_version"] for r in records} == {"stable", "canary"}


def test_streamed_timings_ttft_before_the_end_and_one_gap_per_later_chunk(tmp_path: Path) -> None:
    records, _ = run(Server(gap_s=0.02), tmp_path, pairs=2, concurrency=1)
    for r in records:
        ttft, latency, gaps = float(r["ttft_ms"]), float(r["latency_ms"]), r["itl_ms"]  # type: ignore[arg-type]
        assert isinstance(gaps, list)
        assert len(gaps) == 1
        assert 0 < ttft < latency
        assert gaps[0] > 10  # the 20 ms between chunks, measured as they arrived
    assert {r["completion"] for r in records} == {"yes", "YES"}
    assert {r["finish_reason"] for r in records if r["row_id"] == "r1"} == {"length"}
    assert {r["finish_reason"] for r in records if r["row_id"] == "r0"} == {"stop"}


def test_the_variant_sent_first_alternates() -> None:
    assert [pair_order(i)[0] for i in range(4)] == ["stable", "canary", "stable", "canary"]


def test_with_one_pair_in_flight_the_send_order_follows_the_alternation(tmp_path: Path) -> None:
    server = Server(gap_s=0.001)
    run(server, tmp_path, pairs=4, concurrency=1)
    firsts = [server.seen[i][0] for i in range(0, 8, 2)]
    assert firsts == ["stable", "canary", "stable", "canary"]


def test_a_failing_half_is_recorded_as_failed_and_its_pair_kept(tmp_path: Path) -> None:
    records, pairs = run(Server(status={"canary": 500}), tmp_path, pairs=3)
    assert pairs == 3
    canary = [r for r in records if r["variant"] == "canary"]
    assert all(not r["ok"] and r["status"] == 500 for r in canary)
    assert all(str(r["error"]).startswith("HTTP 500") and r["completion"] == "" for r in canary)
    assert all(r["ok"] for r in records if r["variant"] == "stable")


def test_the_time_limit_stops_new_pairs(tmp_path: Path) -> None:
    result = run_paired(URLS, "", "m", ROWS, tmp_path / "p.jsonl",
                        PairedSettings(pairs=6, concurrency=1, time_limit_s=0.05),
                        transport=httpx.MockTransport(Server(gap_s=0.02).handle))  # fmt: skip
    assert 1 <= result.pairs < 6
    assert result.stopped_early
    assert len(read_records(result.records)) == 2 * result.pairs  # only whole pairs


def test_only_loopback_endpoints_and_both_variants_are_accepted(tmp_path: Path) -> None:
    settings = PairedSettings(pairs=1)
    with pytest.raises(PairedWindowError, match="not on loopback"):
        run_paired({"stable": "http://127.0.0.1:1", "canary": "http://10.0.0.8:8000"}, "", "m",
                   ROWS, tmp_path / "p.jsonl", settings)  # fmt: skip
    with pytest.raises(PairedWindowError, match="canary's direct endpoint"):
        run_paired({"stable": "http://127.0.0.1:1"}, "", "m", ROWS, tmp_path / "p.jsonl", settings)


def test_an_unreachable_variant_is_a_failed_half_not_a_crash(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    result = run_paired(URLS, "", "m", ROWS[:1], tmp_path / "p.jsonl", PairedSettings(pairs=1),
                        transport=httpx.MockTransport(handler))  # fmt: skip
    records = read_records(result.records)
    assert [r["error"] for r in records] == ["no response: ConnectError"] * 2


def test_it_runs_from_inside_a_running_event_loop(tmp_path: Path) -> None:
    async def inside() -> int:
        return run(Server(gap_s=0.001), tmp_path, pairs=2)[1]

    assert asyncio.run(inside()) == 2


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        PairedSettings(pairs=0)
    with pytest.raises(ValueError, match="must be > 0"):
        PairedSettings(time_limit_s=0)
