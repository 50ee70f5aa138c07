"""run_load against a fake OpenAI router on loopback: per-variant split, records, outputs.

The fake stands for HAProxy in front of stable + canary vLLM servers with the canaryflow
middleware: it checks the API key, answers the sum of an arithmetic prompt, picks a variant
per request with a seeded 30% canary weight, sets the variant headers, echoes X-Request-ID
and streams SSE chunks when asked. Every run is bounded in requests and seconds.
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from infra.load import (
    LoadTimeoutError,
    NoRequestsCompletedError,
    RouterUnreachableError,
)
from infra.load.prompts import PromptSource
from infra.load.records import read_records
from infra.load.runner import LoadProfile, run_load
from validation.golden import TaskSpec, sample, write_jsonl

pytestmark = pytest.mark.integration

KEY = "sk-test-0123456789abcdefSECRET"
MODEL = "tiny-chat"
VERSIONS = {"stable": "1", "canary": "2"}


class FakeRouter(ThreadingHTTPServer):
    """A router + two variants in one loopback HTTP/1.1 server (threaded, keep-alive)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # 8 users connecting at once must not hit a SYN retry

    def __init__(self, canary_weight: float = 0.3, mode: str = "ok", seed: int = 7) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.canary_weight, self.mode = canary_weight, mode
        self.chunk_delay_s = 0.0  # pause before every SSE chunk after the first
        self._rng, self._lock = random.Random(seed), threading.Lock()
        self.seen: Counter[str] = Counter()
        self.request_ids: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def pick(self, request_id: str) -> str:
        with self._lock:
            variant = "canary" if self._rng.random() < self.canary_weight else "stable"
            self.seen[variant] += 1
            self.request_ids.add(request_id)
            return variant


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # SSE chunks go out at once, as from uvicorn
    server: FakeRouter
    _SUM: ClassVar[re.Pattern[str]] = re.compile(r"^(\d+)\+(\d+)$")

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._json(401, {"error": "Unauthorized"}, {})
        else:
            self._json(200, {"object": "list", "data": [{"id": MODEL}]}, {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.server.mode == "drop":
            self.close_connection = True
            return
        if self.server.mode == "hang":
            time.sleep(30)
            return
        request_id = self.headers.get("X-Request-ID", "none")
        variant = self.server.pick(request_id)
        extra = {
            "X-Canaryflow-Variant": variant,
            "X-Canaryflow-Model-Version": VERSIONS[variant],
            "X-Request-ID": request_id,
        }
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._json(401, {"error": "Unauthorized"}, extra)
            return
        m = self._SUM.match(body["messages"][-1]["content"])
        answer = str(int(m.group(1)) + int(m.group(2))) if m else "?"
        if body.get("stream"):
            self._stream(answer, extra)
        else:
            message = {"role": "assistant", "content": answer}
            self._json(200, {"choices": [{"index": 0, "message": message}]}, extra)

    def _json(self, status: int, payload: dict[str, Any], extra: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, answer: str, extra: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        deltas = [{"role": "assistant", "content": ""}, *({"content": c} for c in answer)]
        events = [json.dumps({"choices": [{"index": 0, "delta": d}]}) for d in deltas]
        for i, event in enumerate([*events, "[DONE]"]):
            if i:
                time.sleep(self.server.chunk_delay_s)
            self._chunk(f"data: {event}\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


@pytest.fixture
def router(request: pytest.FixtureRequest) -> Iterator[FakeRouter]:
    """A running FakeRouter; parametrize indirectly with a mode ("drop", "hang")."""
    with serving(FakeRouter(mode=getattr(request, "param", "ok"))) as server:
        yield server


@contextmanager
def serving(server: FakeRouter) -> Iterator[FakeRouter]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    return write_jsonl(sample(TaskSpec(max_operand=50), 40, seed=3), tmp_path / "golden.jsonl")


def _assert_no_key(out_dir: Path, key: str) -> None:
    for path in out_dir.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"API key leaked into {path.name}"


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def test_streamed_load_splits_per_variant(router: FakeRouter, golden: Path, tmp_path: Path) -> None:
    n = 200
    router.chunk_delay_s = 0.01  # >= 2 pauses: a stream ends >= 20 ms after its first chunk
    profile = LoadProfile(users=8, spawn_rate=100, prompts=PromptSource(kind="golden", path=golden))
    result = run_load(router.url, KEY, MODEL, profile, tmp_path / "out", requests=n, timeout_s=45)

    assert result.completed == n
    assert result.budget_reached
    assert {v: s.count for v, s in result.variants.items()} == dict(router.seen)
    canary = result.variants["canary"]
    sigma = math.sqrt(n * 0.3 * 0.7)
    assert abs(canary.count - 0.3 * n) < 4.5 * sigma, canary.count
    assert all(s.failures == 0 and s.p95_ms is not None for s in result.variants.values())
    assert canary.model_versions == ["2"]
    assert canary.ttft_p50_ms is not None

    records = read_records(result.results)
    assert len(records) == n
    assert set(records[0]) == {
        "ts", "variant", "model_version", "status", "ok", "latency_ms", "ttft_ms",
        "prompt", "answer", "completion", "request_id", "error", "finish_reason", "origin",
    }  # fmt: skip
    for r in records:
        assert r["ok"]
        assert r["status"] == 200
        assert r["error"] is None
        assert r["completion"] == r["answer"]
        assert r["answer"] is not None
        assert r["model_version"] == VERSIONS[r["variant"]]
        assert r["ttft_ms"] is not None
        assert 0 < r["ttft_ms"] < r["latency_ms"] - 15  # TTFT is the first chunk, not the body
    assert {r["request_id"] for r in records} == router.request_ids  # joins server captures

    rows = _csv_rows(result.stats_csv)
    for variant, summary in result.variants.items():
        assert int(rows[f"chat [{variant}]"]["Request Count"]) == summary.count
    assert int(rows["Aggregated"]["Request Count"]) == n
    stats = json.loads(result.stats_json.read_text())
    assert {e["name"]: e["num_requests"] for e in stats} == {
        f"chat [{v}]": s.count for v, s in result.variants.items()
    }
    assert "chat [canary]" in result.html.read_text()
    assert result.history_csv.exists()
    assert result.failures_csv.exists()
    _assert_no_key(tmp_path, KEY)


def test_wrong_key_counts_failures_per_variant(router: FakeRouter, tmp_path: Path) -> None:
    profile = LoadProfile(users=4, spawn_rate=100, stream=False)
    wrong = "sk-wrong-key-9876543210"
    result = run_load(
        router.url, wrong, MODEL, profile, tmp_path / "out", requests=60, timeout_s=45
    )
    assert result.completed == 60
    assert {v: (s.count, s.failures) for v, s in result.variants.items()} == {
        v: (c, c) for v, c in router.seen.items()
    }
    records = read_records(result.results)
    assert all(r["status"] == 401 and not r["ok"] for r in records)
    assert all(r["error"].startswith("HTTP 401") and r["completion"] == "" for r in records)
    rows = _csv_rows(result.stats_csv)
    for variant, count in router.seen.items():
        assert int(rows[f"chat [{variant}]"]["Failure Count"]) == count
    _assert_no_key(tmp_path, wrong)


def test_max_duration_bounds_a_budget_not_reached(router: FakeRouter, tmp_path: Path) -> None:
    # 5 s, not 1: Locust's start-up counts against the duration, and on a busy 2-core
    # machine 1 s ended before its first request (NoRequestsCompletedError)
    profile = LoadProfile(users=2, spawn_rate=100, max_duration_s=5)
    result = run_load(
        router.url, KEY, MODEL, profile, tmp_path / "out", requests=10**7, timeout_s=30
    )
    assert 0 < result.completed < 10**7
    assert not result.budget_reached


def test_unreachable_router_is_named(tmp_path: Path) -> None:
    server = FakeRouter()
    url = server.url
    server.server_close()  # the port is now closed: connection refused
    with pytest.raises(RouterUnreachableError, match="did not answer"):
        run_load(url, KEY, MODEL, LoadProfile(), tmp_path, requests=5, probe_timeout_s=0.5)


@pytest.mark.parametrize("router", ["drop"], indirect=True)
def test_no_response_at_all_is_named(router: FakeRouter, tmp_path: Path) -> None:
    with pytest.raises(NoRequestsCompletedError, match="none got an HTTP response"):
        run_load(router.url, KEY, MODEL, LoadProfile(users=2), tmp_path, requests=10, timeout_s=30)


@pytest.mark.parametrize("router", ["hang"], indirect=True)
def test_hard_timeout_kills_locust(router: FakeRouter, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(LoadTimeoutError, match="hard timeout"):
        run_load(router.url, KEY, MODEL, LoadProfile(users=1), tmp_path, requests=5, timeout_s=3)
    assert time.monotonic() - start < 3 + 2 * 5 + 2


_IGNORES_SIGTERM = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "60"])  # same process group: must die too
open(os.environ["PIDS_FILE"], "w").write(f"{os.getpid()} {child.pid}")
time.sleep(60)
"""


def test_hard_timeout_escalates_to_sigkill(
    router: FakeRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Locust that ignores SIGTERM (as under a Prefect flow) is killed with its group."""
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("PIDS_FILE", str(pids_file))
    stubborn = [sys.executable, "-c", _IGNORES_SIGTERM]
    with pytest.raises(LoadTimeoutError):
        run_load(router.url, KEY, MODEL, LoadProfile(), tmp_path / "out", requests=5,
                 timeout_s=1.5, locust_command=stubborn)  # fmt: skip
    for pid in map(int, pids_file.read_text().split()):
        assert not _alive(pid), f"pid {pid} survived the hard timeout"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped
