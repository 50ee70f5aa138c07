"""A MetricSource that sends each metric to the source that measures it best.

    source = RoutedSource({Metric.LATENCY: locust, Metric.ERRORS: locust,
                           Metric.TTFT: prometheus, Metric.QUALITY: capture})

An unrouted metric is an error (never a silent fallback to some default source).
"""

from __future__ import annotations

from collections.abc import Mapping

from validation.metrics.base import MetricSource, Sample, unsupported


class RoutedSource:
    """Dispatches `query` by metric name; online when every routed source is."""

    def __init__(self, routes: Mapping[str, MetricSource]) -> None:
        self._routes = {str(k): v for k, v in routes.items()}

    def query(self, metric: str, variant: str, window_s: float) -> Sample:
        source = self._routes.get(str(metric))
        if source is None:
            raise unsupported("RoutedSource", str(metric), sorted(self._routes))
        return source.query(metric, variant, window_s)

    def is_online(self) -> bool:
        return all(
            source.is_online() for source in {id(s): s for s in self._routes.values()}.values()
        )
