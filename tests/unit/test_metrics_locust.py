"""LocustSource: the per-request JSONL (raw observations) and Locust's stats CSV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from validation.metrics.base import Metric, NoDataError
from validation.metrics.locust_stats import LocustSource

# The header Locust 2.47 writes to <prefix>_stats.csv (StatsCSV.requests_csv_columns).
STATS_CSV = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,\
50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
POST,chat [canary],120,3,52,55.1,40,210,310.0,2.0,0.05,52,56,60,62,70,90,120,150,210,210,210
POST,chat [stable],1080,2,50,51.3,38,190,309.5,18.0,0.03,50,54,57,59,66,80,100,130,180,190,190
,Aggregated,1200,5,50,51.7,38,210,309.6,20.0,0.08,50,54,58,60,67,82,105,140,190,210,210
"""


def record(variant: str, latency: float, **kw: Any) -> dict[str, Any]:
    return {"variant": variant, "latency_ms": latency, "ttft_ms": latency / 5, "ok": True,
            "status": 200, **kw}  # fmt: skip


def write_jsonl(path: Path, records: list[dict[str, Any]], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra, encoding="utf-8")
    return path


def test_latency_and_ttft_are_raw_values_of_ok_requests(tmp_path: Path) -> None:
    recs = [record("canary", 50.0 + i) for i in range(5)]
    recs += [record("canary", 999.0, ok=False, status=500, ttft_ms=None), record("stable", 40.0)]
    source = LocustSource(write_jsonl(tmp_path / "requests.jsonl", recs))
    latency = source.query(Metric.LATENCY, "canary", 60)
    assert latency.values is not None
    assert list(latency.values) == [50, 51, 52, 53, 54]
    ttft = source.query(Metric.TTFT, "canary", 60)
    assert ttft.values is not None
    assert ttft.values[0] == pytest.approx(10.0)
    errors = source.query(Metric.ERRORS, "canary", 60)
    assert (errors.successes, errors.failures, errors.rate) == (5, 1, pytest.approx(1 / 6))


def test_quality_is_exact_match_on_ok_requests_with_an_answer(tmp_path: Path) -> None:
    recs = [
        record("canary", 50, answer="4", completion="4"),
        record("canary", 50, answer="4", completion="4 apples"),
        record("canary", 50, answer=None, completion="whatever"),  # not a golden prompt
        record("canary", 50, answer="4", completion="", ok=False, status=500),  # an error
        record("canary", 50),
    ]
    sample = LocustSource(write_jsonl(tmp_path / "r.jsonl", recs)).query("quality", "canary", 60)
    assert (sample.successes, sample.failures) == (1, 1)


def test_window_uses_ts_and_malformed_lines_are_noted(tmp_path: Path) -> None:
    recs = [record("stable", 10.0, ts=1000.0), record("stable", 20.0, ts=1095.0)]
    path = write_jsonl(tmp_path / "r.jsonl", recs, extra='{"variant": "stable"}\n{"torn": ')
    source = LocustSource(path, clock=lambda: 1100.0)
    sample = source.query("latency", "stable", 30)
    assert sample.values is not None
    assert list(sample.values) == [20.0]
    assert sample.notes == ("skipped 2 malformed lines",)
    assert source.query("latency", "stable", 200).n == 2


def test_missing_variant_is_no_data(tmp_path: Path) -> None:
    source = LocustSource(write_jsonl(tmp_path / "r.jsonl", [record("stable", 10.0)]))
    with pytest.raises(NoDataError):
        source.query("latency", "canary", 60)
    only_failed = [record("canary", 10.0, ok=False, status=0, ttft_ms=None)]
    source = LocustSource(write_jsonl(tmp_path / "f.jsonl", only_failed))
    with pytest.raises(NoDataError):
        source.query("ttft", "canary", 60)


def test_csv_gives_error_counts_when_there_is_no_jsonl(tmp_path: Path) -> None:
    (tmp_path / "run_stats.csv").write_text(STATS_CSV, encoding="utf-8")
    source = LocustSource(tmp_path / "absent.jsonl", csv_prefix=tmp_path / "run")
    canary = source.query(Metric.ERRORS, "canary", 60)
    assert (canary.successes, canary.failures, canary.source) == (117, 3, "locust-csv")
    with pytest.raises(NoDataError, match="need the per-request JSONL"):
        source.query(Metric.LATENCY, "canary", 60)
    assert source.is_online()
    named = LocustSource(csv_prefix=tmp_path / "run", name_template="{variant}")
    with pytest.raises(NoDataError, match="'canary'"):
        named.query("errors", "canary", 60)


def test_a_large_file_stays_fast(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lat = rng.lognormal(4, 0.5, 50_000)
    recs = [record("canary" if i % 10 == 0 else "stable", float(x)) for i, x in enumerate(lat)]
    source = LocustSource(write_jsonl(tmp_path / "big.jsonl", recs))
    assert source.query("latency", "canary", 60).n == 5_000


def test_reads_the_records_the_locustfile_writes(tmp_path: Path) -> None:
    from infra.load.records import RequestRecord

    full: RequestRecord = {
        "ts": 1000.0, "variant": "canary", "model_version": "3", "status": 200, "ok": True,
        "latency_ms": 42.0, "ttft_ms": 7.0, "prompt": "2+2", "answer": "4", "completion": "4",
        "request_id": "abc", "error": None,
    }  # fmt: skip
    source = LocustSource(write_jsonl(tmp_path / "r.jsonl", [dict(full)]), clock=lambda: 1001.0)
    assert source.query("latency", "canary", 60).n == 1
    assert source.query("quality", "canary", 60).successes == 1
    assert source.query("errors", "canary", 60).failures == 0
