"""PrometheusSource against a tiny Prometheus-speaking HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from validation.analysis.stats import histogram_quantile
from validation.metrics.base import Metric, MetricSourceError, NoDataError
from validation.metrics.prometheus import QUERIES, PrometheusSource

NOW = 1767225600.0
LE = ["0.01", "0.025", "0.05", "0.1", "0.25", "+Inf"]
CUMULATIVE = {"stable": [0, 40, 300, 380, 400, 400], "canary": [0, 5, 20, 60, 98, 100]}


def vector(*items: tuple[dict[str, str], float | str]) -> dict[str, Any]:
    result = [{"metric": labels, "value": [NOW, str(v)]} for labels, v in items]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def promql(name: str, variant: str, window: str = "60s") -> str:
    return QUERIES[name].format(variant=variant, window=window, q=0.95)


class FakePrometheus(ThreadingHTTPServer):
    answers: dict[str, tuple[int, dict[str, Any]]]
    seen: list[str]


class Handler(BaseHTTPRequestHandler):
    server: FakePrometheus

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query).get("query", [""])[0]
        self.server.seen.append(query)
        code, body = self.server.answers.get(query, (200, vector()))
        if url.path != "/api/v1/query":
            code, body = 404, {"status": "error", "error": "not found"}
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    server = FakePrometheus(("127.0.0.1", 0), Handler)
    server.answers, server.seen = {}, []
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url_of(server: FakePrometheus) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


def serve_histograms(server: FakePrometheus, metric: str) -> None:
    for variant, cum in CUMULATIVE.items():
        buckets = vector(*(({"le": le}, c) for le, c in zip(LE, cum, strict=True)))
        server.answers[promql(f"{metric}_buckets", variant)] = (200, buckets)
        q = histogram_quantile([float(x) for x in LE], _per_bucket(cum), 0.95)[0]
        server.answers[promql(f"{metric}_quantile", variant)] = (200, vector(({}, q)))


def _per_bucket(cum: list[int]) -> list[int]:
    return [c - p for c, p in zip(cum, [0, *cum[:-1]], strict=True)]


def test_latency_returns_bucket_deltas_in_ms_and_the_promql_quantile(prom: FakePrometheus) -> None:
    serve_histograms(prom, "latency")
    source = PrometheusSource(url_of(prom))
    sample = source.query(Metric.LATENCY, "canary", 60)
    assert sample.histogram is not None
    assert sample.unit == "ms"
    assert sample.histogram.upper_bounds == (10.0, 25.0, 50.0, 100.0, 250.0, float("inf"))
    assert sample.histogram.counts == (0, 5, 15, 40, 38, 2)
    assert sample.n == 100
    # what Prometheus computed equals what the analysis computes from the buckets
    local = histogram_quantile(sample.histogram.upper_bounds, sample.histogram.counts, 0.95)
    assert sample.value == pytest.approx(local[0])
    assert prom.seen == [promql("latency_buckets", "canary"), promql("latency_quantile", "canary")]
    assert 'vllm:e2e_request_latency_seconds_bucket{variant="canary"}[60s]' in prom.seen[0]


def test_ttft_uses_the_ttft_histogram(prom: FakePrometheus) -> None:
    serve_histograms(prom, "ttft")
    sample = PrometheusSource(url_of(prom)).query(Metric.TTFT, "stable", 60)
    assert sample.n == 400
    assert "time_to_first_token" in prom.seen[0]


def test_errors_from_vllm_successes_and_haproxy_5xx(prom: FakePrometheus) -> None:
    prom.answers[promql("success", "canary", "120s")] = (200, vector(({}, 197.6)))
    prom.answers[promql("server_errors", "canary", "120s")] = (200, vector(({}, 3.2)))
    sample = PrometheusSource(url_of(prom)).query("errors", "canary", 120)
    assert (sample.successes, sample.failures) == (198, 3)
    assert 'code="5xx",variant="canary"' in prom.seen[1]


def test_tokens_per_second(prom: FakePrometheus) -> None:
    prom.answers[promql("tokens_per_s", "stable")] = (200, vector(({}, 812.5)))
    sample = PrometheusSource(url_of(prom)).query(Metric.TOKENS_PER_S, "stable", 60)
    assert sample.value == 812.5
    assert sample.unit == "tok/s"


def test_no_series_or_nan_is_no_data(prom: FakePrometheus) -> None:
    source = PrometheusSource(url_of(prom))
    with pytest.raises(NoDataError, match="no latency observations"):
        source.query("latency", "canary", 60)
    prom.answers[promql("tokens_per_s", "canary")] = (200, vector(({}, "NaN")))
    with pytest.raises(NoDataError, match="NaN"):
        source.query("tokens_per_s", "canary", 60)


def test_prometheus_errors_and_outages_are_metric_source_errors(prom: FakePrometheus) -> None:
    bad = {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}
    prom.answers[promql("tokens_per_s", "canary")] = (400, bad)
    source = PrometheusSource(url_of(prom))
    with pytest.raises(MetricSourceError, match="parse error"):
        source.query("tokens_per_s", "canary", 60)
    with pytest.raises(MetricSourceError, match="cannot measure 'quality'"):
        source.query("quality", "canary", 60)
    with pytest.raises(ValueError, match="plain label value"):
        source.query("errors", 'x"}or{', 60)
    prom.answers["vector(1)"] = (200, vector(({}, 1)))
    assert source.is_online()
    down = PrometheusSource("http://127.0.0.1:9", timeout_s=1)  # discard port: refused
    assert not down.is_online()
    with pytest.raises(MetricSourceError, match="did not answer"):
        down.query("errors", "canary", 60)
