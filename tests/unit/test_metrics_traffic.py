"""TrafficSource and the top-up: load + paired records, captured user requests, router counters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.errors import NoTrafficError
from infra.load.topup import load_needed, plan_top_up
from serving.capture import Exchange, RegexRedactor, build_record
from validation.metrics.base import Metric, MetricSourceError, NoDataError
from validation.metrics.traffic import TrafficSource, user_counts

NOW = 1_767_225_600.0


def captured(variant: str, request_id: str, *, status: int = 200, text: str = "ok",
             finish: str = "stop", at: float = NOW - 10) -> dict[str, Any]:  # fmt: skip
    """A capture record as the serving middleware writes it."""
    body = json.dumps({"choices": [{"message": {"content": text}, "finish_reason": finish}]})
    ex = Exchange(request_id=request_id, variant=variant, model_version="1", method="POST",
                  path="/v1/chat/completions", started_at=at, status=status,
                  request_body=b'{"messages": [{"role": "user", "content": "hi"}]}',
                  response_body=body.encode())  # fmt: skip
    return build_record(ex, RegexRedactor([]))


def client(variant: str, origin: str, *, ok: bool = True, text: str = "ok",
           finish: str | None = "stop", at: float = NOW - 5) -> dict[str, Any]:  # fmt: skip
    return {"ts": at, "variant": variant, "status": 200 if ok else 502, "ok": ok,
            "latency_ms": 50.0, "completion": text if ok else "", "origin": origin,
            "finish_reason": finish if ok else None}  # fmt: skip


def jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


class Router:
    def __init__(self, failures: dict[str, int] | None = None, down: bool = False) -> None:
        self.failures, self.down = failures or {}, down

    def router_failures(self, variant: str, window_s: float) -> int:
        if self.down:
            raise MetricSourceError("Prometheus at http://127.0.0.1:1 did not answer")
        return self.failures.get(variant, 0)


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    folder = tmp_path / "capture"
    folder.mkdir()
    jsonl(folder / "capture-canary-h-1.jsonl", [
        captured("canary", "user-1"), captured("canary", "user-2", status=503),
        captured("canary", "user-3", text="  ", finish="length"),
        captured("canary", "cf-load-abc"),  # the load's own: counted from its records
        captured("canary", "cf-load-paired-abc"),  # the paired window's: likewise
        captured("canary", "user-old", at=NOW - 900),
    ])  # fmt: skip
    jsonl(folder / "capture-stable-h-1.jsonl", [captured("stable", f"u{i}") for i in range(5)])
    return folder


@pytest.fixture
def records(tmp_path: Path) -> list[Path]:
    load = jsonl(tmp_path / "requests.jsonl", [
        client("canary", "load"), client("canary", "load", ok=False),
        client("stable", "load"), client("unknown", "load", ok=False),
        {k: v for k, v in client("canary", "load").items() if k not in ("origin", "finish_reason")},
    ])  # fmt: skip
    paired = jsonl(tmp_path / "paired.jsonl", [
        client("canary", "paired", text="", finish="length"), client("stable", "paired"),
    ])  # fmt: skip
    return [load, paired]


def test_errors_count_every_origin_once(capture: Path, records: list[Path]) -> None:
    source = TrafficSource(records, capture, Router({"canary": 1}), clock=lambda: NOW)
    errors = source.query(Metric.ERRORS, "canary", 60)
    # load 3 (1 failed) + users 3 (one 503) + paired 1; the router's 1 failure is already
    # among the records' 2 routed failures
    assert (errors.n, errors.failures) == (7, 2)
    assert source.counts(60)["user"] == {"canary": 3, "stable": 5}


def test_router_failures_beyond_the_records_are_added(capture: Path, records: list[Path]) -> None:
    source = TrafficSource(records, capture, Router({"canary": 6}), clock=lambda: NOW)
    errors = source.query(Metric.ERRORS, "canary", 60)
    assert (errors.n, errors.failures) == (7 + 4, 6)  # 4 requests only the router saw fail


def test_without_router_counters_errors_say_so(capture: Path, records: list[Path]) -> None:
    down = TrafficSource(records, capture, Router(down=True), clock=lambda: NOW)
    assert any("unavailable" in n for n in down.query(Metric.ERRORS, "canary", 60).notes)
    alone = TrafficSource(records, capture, None, clock=lambda: NOW)
    assert any("records alone" in n for n in alone.query(Metric.ERRORS, "canary", 60).notes)


def test_cut_and_empty_answers_over_all_answered_traffic(
    capture: Path, records: list[Path]
) -> None:
    source = TrafficSource(records, capture, clock=lambda: NOW)
    cut = source.query(Metric.CUT_AT_MAX_TOKENS, "canary", 60)
    # answered: load 2 (one without finish_reason), users 2, paired 1
    assert (cut.n, cut.failures) == (4, 2)
    empty = source.query(Metric.EMPTY_ANSWERS, "canary", 60)
    assert (empty.n, empty.failures) == (5, 2)
    with pytest.raises(NoDataError, match="no 'errors' requests for 'b'"):
        source.query(Metric.ERRORS, "b", 60)
    with pytest.raises(MetricSourceError, match="cannot measure 'latency'"):
        source.query(Metric.LATENCY, "canary", 60)


def test_user_counts_leave_synthetic_and_old_requests_out(capture: Path) -> None:
    assert user_counts(capture, since=NOW - 60) == {"canary": 3, "stable": 5}
    assert user_counts(capture, since=NOW - 1000)["canary"] == 4
    assert user_counts(None, since=0) == {}


@pytest.mark.parametrize(
    ("requests", "weight", "users", "expected"),
    [
        (1000, 10, {}, 1000),
        (1000, 10, {"canary": 100, "stable": 900}, 0),  # users cover both shares
        (1000, 10, {"canary": 50, "stable": 5000}, 500),  # the canary's 50 missing / 0.1
        (1000, 50, {"canary": 500, "stable": 100}, 800),  # the stable's 400 missing / 0.5
        (1000, 25, {"canary": 10_000, "stable": 10_000}, 0),
    ],
)
def test_load_tops_up_only_what_users_did_not_supply(
    requests: int, weight: int, users: dict[str, int], expected: int
) -> None:
    assert load_needed(requests, weight, users) == expected
    plan = plan_top_up(requests, weight, users, load_enabled=True)
    assert plan.load_requests == expected
    assert f"load sends {expected}" in plan.reason


def test_no_user_traffic_with_the_load_disabled_is_no_traffic_never_a_pass() -> None:
    with pytest.raises(NoTrafficError, match="load is disabled"):
        plan_top_up(400, 10, {}, load_enabled=False)
    with pytest.raises(NoTrafficError, match="stable 300"):
        plan_top_up(400, 10, {"stable": 300}, load_enabled=False)
    plan = plan_top_up(400, 10, {"canary": 3, "stable": 30}, load_enabled=False)
    assert plan.load_requests == 0  # users only, however few: the analysis judges them
    with pytest.raises(ValueError, match="weight"):
        load_needed(10, 101, {})
