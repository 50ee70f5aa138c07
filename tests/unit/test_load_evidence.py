"""Which source answers which metric; the router and ITL queries; the golden rows and scorer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from infra.load.evidence import crosscheck, golden_rows, rotate, step_source
from validation.golden import Example, write_jsonl
from validation.metrics.base import Metric, MetricSourceError
from validation.metrics.paired import PairedSource
from validation.metrics.prometheus import QUERIES, PrometheusSource

NOW = 1_767_225_600.0


def record(variant: str, origin: str, latency: float, **extra: Any) -> dict[str, Any]:
    return {"ts": NOW - 1, "variant": variant, "status": 200, "ok": True, "latency_ms": latency,
            "ttft_ms": latency / 4, "completion": "4", "answer": "4", "origin": origin,
            "itl_ms": [2.0, 4.0], **extra}  # fmt: skip


def vector(result: list[dict[str, Any]]) -> httpx.Response:
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return httpx.Response(200, json=body)


def prometheus(answers: dict[str, float]) -> tuple[PrometheusSource, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        query = parse_qs(urlparse(str(request.url)).query)["query"][0]
        seen.append(query)
        if query not in answers:
            return vector([])
        if "_bucket" in query and "histogram_quantile" not in query:
            result = [{"metric": {"le": le}, "value": [NOW, str(v)]}
                      for le, v in (("0.01", 3), ("0.05", 9), ("+Inf", 10))]  # fmt: skip
        else:
            result = [{"metric": {}, "value": [NOW, str(answers[query])]}]
        return vector(result)

    client = httpx.Client(transport=httpx.MockTransport(handle))
    return PrometheusSource("http://prom.test", client=client), seen


def fmt(name: str, variant: str) -> str:
    return QUERIES[name].format(variant=variant, window="60s", q=0.95)


def test_speed_and_quality_come_from_the_paired_window_when_it_ran(tmp_path: Path) -> None:
    load = tmp_path / "requests.jsonl"
    load.write_text(json.dumps(record("canary", "load", 900.0)) + "\n")
    paired = tmp_path / "paired.jsonl"
    paired.write_text("".join(json.dumps(record(v, "paired", 50.0, pair_id="p", row_id="r"))
                              + "\n" for v in ("stable", "canary")))  # fmt: skip
    source = step_source(load, paired, lambda r, o: 1.0, None, None, clock=lambda: NOW)
    assert source.query(Metric.LATENCY, "canary", 60).source == "paired"
    assert source.query(Metric.QUALITY_PAIRED, "canary", 60).source == "paired"
    errors = source.query(Metric.ERRORS, "canary", 60)
    assert errors.source == "traffic"
    assert errors.n == 2
    without = step_source(load, None, None, None, None, clock=lambda: NOW)
    assert without.query(Metric.LATENCY, "canary", 60).source == "locust"
    with pytest.raises(MetricSourceError, match="cannot measure 'itl'"):
        without.query(Metric.ITL, "canary", 60)  # no paired window, no Prometheus


def test_router_failures_sum_5xx_connection_and_response_errors_of_the_slot() -> None:
    query = fmt("router_failures", "canary")
    for part in ('http_responses_total{code="5xx",variant="canary"}',
                 'connection_errors_total{variant="canary"}',
                 'response_errors_total{variant="canary"}', "or vector(0)"):  # fmt: skip
        assert part in query
    source, _ = prometheus({query: 3.4})
    assert source.router_failures("canary", 60) == 3


def test_itl_reads_the_vllm_histogram_and_crosschecks_against_the_client(tmp_path: Path) -> None:
    answers = {fmt(f"{m}_{k}", v): 0.012 for m in ("itl", "ttft") for k in ("buckets", "quantile")
               for v in ("stable", "canary")}  # fmt: skip
    prom, seen = prometheus(answers)
    itl = prom.query(Metric.ITL, "canary", 60)
    assert itl.histogram is not None
    assert itl.n == 10
    assert itl.value == pytest.approx(12.0)
    assert any("vllm:inter_token_latency_seconds_bucket" in q for q in seen)
    paired = tmp_path / "paired.jsonl"
    paired.write_text("".join(json.dumps(record(v, "paired", 40.0, pair_id="p", row_id="r"))
                              + "\n" for v in ("stable", "canary")))  # fmt: skip
    report = crosscheck(PairedSource(paired, clock=lambda: NOW), prom, 60)
    assert report["itl.canary"]["client_p50_ms"] == 3.0
    assert report["itl.canary"]["server_p95_ms"] == 12.0
    assert report["ttft.stable"]["client_n"] == 1


def test_golden_rows_carry_ids_and_an_exact_match_scorer(tmp_path: Path) -> None:
    rows, scorer = golden_rows(write_jsonl([Example("1+1", "2"), Example("2+5", "7")],
                                           tmp_path / "golden.jsonl"))  # fmt: skip
    assert rows[1] == ("golden-1", ({"role": "user", "content": "2+5"},))
    assert scorer("golden-1", "7") == 1.0
    assert scorer("golden-1", "8") == 0.0
    assert [r[0] for r in rotate(rows, 1, 3)] == ["golden-1", "golden-0", "golden-1"]
