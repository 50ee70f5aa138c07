"""PrometheusSource: vLLM and HAProxy metrics per variant through /api/v1/query.

Every series carries a `variant` label (stable | canary), added by the scrape config's
relabelling (infra/). Queries, with {variant}, {window} (e.g. `120s`) and {q} filled in:

    errors        successes: sum(increase(vllm:request_success_total[w]))
                  failures:  sum(increase(haproxy_server_http_responses_total{code="5xx"}[w]))
    latency       buckets:   sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket[w]))
                  value:     histogram_quantile(q, ...the same buckets...)
    ttft          the same over vllm:time_to_first_token_seconds_bucket
    tokens_per_s  value:     sum(rate(vllm:generation_tokens_total[w]))

Histograms come back as per-bucket deltas over the window with bounds in milliseconds, so
the analysis can bootstrap them (and a test can compare the local quantile with PromQL's).
`increase` extrapolates, so counts may be fractional; they are rounded for counting.
An empty answer or NaN is NoDataError; HTTP/connection trouble or an `error` status is
MetricSourceError. Override any query with `queries={name: template}`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import httpx

from validation.metrics.base import (
    Histogram,
    Metric,
    MetricSourceError,
    NoDataError,
    Sample,
    check_window,
    unsupported,
)

_L = '{{variant="{variant}"}}'  # the label matcher; braces doubled for str.format
_5XX = '{{code="5xx",variant="{variant}"}}'
QUERIES: dict[str, str] = {
    "success": f"sum(increase(vllm:request_success_total{_L}[{{window}}]))",
    "server_errors": f"sum(increase(haproxy_server_http_responses_total{_5XX}[{{window}}]))",
    "latency_buckets": (
        f"sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket{_L}[{{window}}]))"
    ),
    "latency_quantile": "histogram_quantile({q}, "
    f"sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket{_L}[{{window}}])))",
    "ttft_buckets": (
        f"sum by (le) (increase(vllm:time_to_first_token_seconds_bucket{_L}[{{window}}]))"
    ),
    "ttft_quantile": "histogram_quantile({q}, "
    f"sum by (le) (increase(vllm:time_to_first_token_seconds_bucket{_L}[{{window}}])))",
    "itl_buckets": (
        f"sum by (le) (increase(vllm:inter_token_latency_seconds_bucket{_L}[{{window}}]))"
    ),
    "itl_quantile": "histogram_quantile({q}, "
    f"sum by (le) (increase(vllm:inter_token_latency_seconds_bucket{_L}[{{window}}])))",
    "tokens_per_s": f"sum(rate(vllm:generation_tokens_total{_L}[{{window}}]))",
    "router_failures": " + ".join(
        f"(sum(increase(haproxy_server_{name}{sel}[{{window}}])) or vector(0))"
        for name, sel in (
            ("http_responses_total", _5XX),
            ("connection_errors_total", _L),
            ("response_errors_total", _L),
        )
    ),
}
SUPPORTED = [Metric.ERRORS, Metric.LATENCY, Metric.TTFT, Metric.ITL, Metric.TOKENS_PER_S]
_VARIANT = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class PrometheusSource:
    """Instant queries against a Prometheus server (httpx client injectable for tests)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:9090",
        *,
        client: httpx.Client | None = None,
        timeout_s: float = 10.0,
        quantile: float = 0.95,
        queries: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._client = client if client is not None else httpx.Client(timeout=timeout_s)
        self._q = quantile
        self._queries = {**QUERIES, **(queries or {})}

    def query(self, metric: str, variant: str, window_s: float) -> Sample:
        check_window(window_s)
        if not _VARIANT.match(variant):
            raise ValueError(f"variant {variant!r} is not a plain label value")
        if metric == Metric.ERRORS:
            return self._errors(variant, window_s)
        if metric in (Metric.LATENCY, Metric.TTFT, Metric.ITL):
            return self._histogram(str(metric), variant, window_s)
        if metric == Metric.TOKENS_PER_S:
            value = self._scalar("tokens_per_s", variant, window_s)
            return Sample(str(metric), variant, window_s, "prometheus", value=value, unit="tok/s")
        raise unsupported("prometheus", str(metric), SUPPORTED)

    def router_failures(self, variant: str, window_s: float) -> int:
        """Requests to the variant's slot that failed at or behind the router (see above)."""
        check_window(window_s)
        if not _VARIANT.match(variant):
            raise ValueError(f"variant {variant!r} is not a plain label value")
        return round(self._scalar("router_failures", variant, window_s))

    def is_online(self) -> bool:
        try:
            return bool(self.run("vector(1)"))
        except MetricSourceError:
            return False

    def run(self, promql: str) -> list[dict[str, Any]]:
        """The `result` vector of an instant query (raises MetricSourceError on trouble)."""
        try:
            resp = self._client.get(f"{self.url}/api/v1/query", params={"query": promql})
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise MetricSourceError(
                f"Prometheus at {self.url} did not answer {promql!r}: {type(exc).__name__}: "
                f"{exc}; is it running and reachable?"
            ) from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise MetricSourceError(
                f"Prometheus refused {promql!r} (HTTP {resp.status_code}): {error}"
            )
        data = body.get("data", {})
        if data.get("resultType") != "vector":
            raise MetricSourceError(
                f"expected a vector from {promql!r}, got {data.get('resultType')}"
            )
        result: list[dict[str, Any]] = data.get("result", [])
        return result

    def _promql(self, name: str, variant: str, window_s: float) -> str:
        window = f"{max(1, round(window_s))}s"
        return self._queries[name].format(variant=variant, window=window, q=self._q)

    def _scalar(self, name: str, variant: str, window_s: float) -> float:
        promql = self._promql(name, variant, window_s)
        result = self.run(promql)
        if not result:
            raise NoDataError(f"Prometheus has no series for {promql!r}")
        value = float(result[0]["value"][1])
        if math.isnan(value):
            raise NoDataError(f"Prometheus answered NaN for {promql!r} (no observations)")
        return value

    def _errors(self, variant: str, window_s: float) -> Sample:
        ok = self._scalar("success", variant, window_s)
        failed = self._scalar("server_errors", variant, window_s)
        successes, failures = round(ok), round(failed)
        if successes + failures == 0:
            raise NoDataError(f"no requests for variant {variant!r} in the last {window_s:g} s")
        return Sample(Metric.ERRORS, variant, window_s, "prometheus",
                      successes=successes, failures=failures)  # fmt: skip

    def _histogram(self, metric: str, variant: str, window_s: float) -> Sample:
        promql = self._promql(f"{metric}_buckets", variant, window_s)
        hist = to_histogram(self.run(promql), scale=1000.0)
        if hist is None or hist.total <= 0:
            raise NoDataError(f"no {metric} observations for {variant!r} ({promql!r})")
        p = self._scalar(f"{metric}_quantile", variant, window_s) * 1000.0
        return Sample(metric, variant, window_s, "prometheus", histogram=hist, value=p, unit="ms")


def to_histogram(result: list[dict[str, Any]], scale: float = 1.0) -> Histogram | None:
    """Per-bucket counts from a `sum by (le)` vector of cumulative buckets (bounds x scale)."""
    pairs = sorted(
        (float(item["metric"]["le"]), float(item["value"][1]))
        for item in result
        if "le" in item.get("metric", {})
    )
    if not pairs:
        return None
    bounds = [b * scale if math.isfinite(b) else b for b, _ in pairs]
    cumulative = [0.0 if math.isnan(c) else c for _, c in pairs]
    # increase() extrapolates each series separately: keep the cumulative non-decreasing
    running, counts = 0.0, []
    for c in cumulative:
        counts.append(max(0.0, c - running))
        running = max(running, c)
    return Histogram(tuple(bounds), tuple(counts))
