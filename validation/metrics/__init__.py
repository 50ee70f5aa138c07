"""Metric sources behind one seam (base.MetricSource); `create` builds one by name.

base.py         MetricSource, Sample, Metric, NoDataError / MetricSourceError
fake.py         FakeSource: arrays and counts in, for unit tests
prometheus.py   PrometheusSource: vLLM + HAProxy metrics per `variant` label
locust_stats.py LocustSource: Locust --csv stats and our per-request JSONL
capture_log.py  CaptureLogSource: the serving middleware's capture JSONL (quality)
routed.py       RoutedSource: each metric from the source that measures it
paired.py       PairedSource: the paired equal-conditions window (speed, paired quality)
traffic.py      TrafficSource: errors and output checks over all traffic (load, paired,
                users' capture, HAProxy counters)
"""

from __future__ import annotations

from typing import Any

from infra.errors import SpecError
from validation.metrics.base import (
    Metric,
    MetricSource,
    MetricSourceError,
    NoDataError,
    Sample,
)


def create(name: str, **options: Any) -> MetricSource:
    """The source called `name` built with `options`; an unknown name is a SpecError."""
    from validation.metrics.capture_log import CaptureLogSource
    from validation.metrics.fake import FakeSource
    from validation.metrics.locust_stats import LocustSource
    from validation.metrics.prometheus import PrometheusSource

    kinds: dict[str, Any] = {
        "prometheus": PrometheusSource,
        "locust": LocustSource,
        "capture": CaptureLogSource,
        "fake": FakeSource,
    }
    if name not in kinds:
        raise SpecError(f"unknown metric source {name!r}; choose one of {', '.join(kinds)}")
    source: MetricSource = kinds[name](**options)
    return source


__all__ = ["Metric", "MetricSource", "MetricSourceError", "NoDataError", "Sample", "create"]
