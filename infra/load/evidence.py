"""One step run's evidence: which metric comes from which source, and a server cross-check.

    source = step_source(load_jsonl, paired_jsonl, scorer, capture_dir, prometheus)
    source.query("ttft", "canary", window_s)      # from the paired window
    source.query("errors", "canary", window_s)    # from all traffic

Routes (a RoutedSource; an unrouted metric is an error, never a fallback):

    metric                                  source
    latency, ttft, itl                      PairedSource: the equal-conditions window, when
                                            it ran; else the router load (LocustSource) for
                                            latency/ttft and Prometheus' vLLM histogram for itl
    quality                                 PairedSource (same rows, both variants, the
                                            scorer); else the load's golden answers (Locust)
    quality_paired, agreement, length_ratio PairedSource (only when the window ran)
    errors, cut_at_max_tokens,              TrafficSource: load + paired + user (capture)
    empty_answers                           records, and HAProxy's counters via Prometheus
    tokens_per_s                            Prometheus (vLLM's generation counter)

`crosscheck` compares the paired window's client-side TTFT / ITL with the servers' own
`vllm:time_to_first_token_seconds` / `vllm:inter_token_latency_seconds` histograms (p95
and median by variant); it is reported (crosscheck.json), not a check: the server's TTFT
excludes the network and HTTP framing, the client's includes them.

The golden set as evaluation rows (until the release's evaluation sets land):
`golden_rows(path)` gives (row_id, messages) rows and the exact-match scorer by row id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infra.load.paired import Row
from validation.golden import exact_match, read_jsonl
from validation.metrics.base import Metric, MetricSource, MetricSourceError
from validation.metrics.locust_stats import LocustSource
from validation.metrics.paired import PairedSource, Scorer
from validation.metrics.prometheus import PrometheusSource
from validation.metrics.routed import RoutedSource
from validation.metrics.traffic import CaptureLocation, TrafficSource

_PAIRED_METRICS = (Metric.LATENCY, Metric.TTFT, Metric.ITL, Metric.QUALITY,
                   Metric.QUALITY_PAIRED, Metric.AGREEMENT, Metric.LENGTH_RATIO)  # fmt: skip
_TRAFFIC_METRICS = (Metric.ERRORS, Metric.CUT_AT_MAX_TOKENS, Metric.EMPTY_ANSWERS)


def step_source(
    load_jsonl: Path | None,
    paired_jsonl: Path | None,
    scorer: Scorer | None,
    capture: CaptureLocation | None,
    prometheus: PrometheusSource | None,
    *,
    clock: Callable[[], float] = time.time,
    roles: Mapping[str, str] | None = None,
) -> RoutedSource:
    """The RoutedSource of one run (see the module doc for the routes).

    `clock` is the file sources' "now": the step load passes its run's end, so a window of
    `end - start` seconds covers exactly that run however late the analysis queries it.
    (Prometheus answers at its own now.) `roles` ({model version: role}) labels the
    capture's records by what each version is now (validation/metrics/capture_log.relabel).
    """
    routes: dict[str, MetricSource] = {}
    traffic = TrafficSource([p for p in (load_jsonl, paired_jsonl) if p is not None],
                            capture, prometheus, clock=clock, roles=roles)  # fmt: skip
    routes.update({m: traffic for m in _TRAFFIC_METRICS})
    if prometheus is not None:
        routes[Metric.TOKENS_PER_S] = prometheus
        routes[Metric.ITL] = prometheus
    if load_jsonl is not None:
        locust = LocustSource(requests_jsonl=load_jsonl, clock=clock)
        routes.update({m: locust for m in (Metric.LATENCY, Metric.TTFT, Metric.QUALITY)})
    if paired_jsonl is not None:
        paired = PairedSource(paired_jsonl, scorer, clock=clock)
        routes.update({m: paired for m in _PAIRED_METRICS})
    return RoutedSource(routes)


def crosscheck(
    paired: PairedSource, prometheus: PrometheusSource, window_s: float
) -> dict[str, Any]:
    """Client (paired window) vs server (vLLM histogram) p50 and p95 of ttft and itl, ms."""
    out: dict[str, Any] = {}
    for metric in (Metric.TTFT, Metric.ITL):
        for variant in ("stable", "canary"):
            entry: dict[str, Any] = {}
            try:
                client = paired.query(metric, variant, window_s).values
                assert client is not None
                entry["client_p50_ms"] = round(float(np.quantile(client, 0.5)), 3)
                entry["client_p95_ms"] = round(float(np.quantile(client, 0.95)), 3)
                entry["client_n"] = int(client.size)
            except MetricSourceError as exc:
                entry["client_error"] = str(exc)
            try:
                server = prometheus.query(metric, variant, window_s)
                entry["server_p95_ms"] = None if server.value is None else round(server.value, 3)
                entry["server_n"] = server.n
            except MetricSourceError as exc:
                entry["server_error"] = str(exc)
            out[f"{metric}.{variant}"] = entry
    return out


def write_crosscheck(report: Mapping[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def golden_rows(path: Path) -> tuple[list[Row], Scorer]:
    """The golden set as (row_id, messages) rows and its exact-match scorer by row id.

    Row ids are the line numbers ("golden-0", ...); the scorer gives 1.0 for an exact
    match of the row's answer, 0.0 otherwise, and raises KeyError for an unknown row.
    """
    examples = read_jsonl(path)
    rows: list[Row] = []
    answers: dict[str, str] = {}
    for i, ex in enumerate(examples):
        row_id = f"golden-{i}"
        rows.append((row_id, ({"role": "user", "content": ex.prompt},)))
        answers[row_id] = ex.answer

    def scorer(row_id: str, output: str) -> float:
        return 1.0 if exact_match(output, answers[row_id]) else 0.0

    return rows, scorer


def rotate(rows: Sequence[Row], start: int, n: int) -> list[Row]:
    """`n` rows from `start` on, wrapping: successive runs see the next rows, and a set
    smaller than `n` is cycled (speed samples may repeat a row; paired quality counts each
    row once, see PairedSource)."""
    if not rows:
        return []
    return [rows[(start + i) % len(rows)] for i in range(n)]
