"""FakeSource, RoutedSource and the by-name factory."""

from __future__ import annotations

import pytest

from infra.errors import SpecError
from validation.metrics import create
from validation.metrics.base import Histogram, Metric, MetricSourceError, NoDataError, Sample
from validation.metrics.fake import FakeSource
from validation.metrics.prometheus import PrometheusSource
from validation.metrics.routed import RoutedSource


def test_fake_answers_what_it_was_given_and_records_calls() -> None:
    source = FakeSource().values("latency", "canary", [1.0, float("nan"), 3.0])
    sample = source.query(Metric.LATENCY, "canary", 30)
    assert sample.values is not None
    assert list(sample.values) == [1.0, 3.0]
    assert (sample.n, sample.window_s) == (2, 30)
    assert source.calls == [("latency", "canary", 30)]
    with pytest.raises(NoDataError):
        source.query("latency", "stable", 30)
    with pytest.raises(ValueError, match="window_s"):
        source.query("latency", "canary", 0)


def test_fake_counts_histograms_and_outage() -> None:
    source = FakeSource().counts("errors", "stable", successes=9, failures=1)
    source.histogram("ttft", "stable", [10, 20, float("inf")], [3, 4, 1])
    assert source.query("errors", "stable", 5).rate == pytest.approx(0.1)
    assert source.query("ttft", "stable", 5).n == 8
    assert FakeSource().counts("quality", "canary", successes=0, failures=0).is_online()
    with pytest.raises(NoDataError):  # zero observations is no data
        FakeSource().counts("quality", "canary", successes=0, failures=0).query(
            "quality", "canary", 5
        )
    down = FakeSource(error=MetricSourceError("down"))
    assert not down.is_online()
    with pytest.raises(MetricSourceError, match="down"):
        down.query("errors", "canary", 5)


def test_histogram_bounds_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascend"):
        Histogram((10.0, 5.0), (1.0, 1.0))
    assert Sample("tokens_per_s", "canary", 5, "x", value=3.0).n == 0


def test_routed_source_dispatches_and_refuses_unrouted_metrics() -> None:
    latency = FakeSource().values("latency", "canary", [5.0])
    quality = FakeSource().counts("quality", "canary", successes=3, failures=1)
    routed = RoutedSource({Metric.LATENCY: latency, Metric.QUALITY: quality})
    assert routed.query("latency", "canary", 10).n == 1
    assert routed.query("quality", "canary", 10).successes == 3
    with pytest.raises(MetricSourceError, match="cannot measure 'ttft'"):
        routed.query("ttft", "canary", 10)
    assert routed.is_online()
    assert not RoutedSource({"errors": FakeSource(error=MetricSourceError("x"))}).is_online()


def test_factory_builds_by_name_and_refuses_unknown_names() -> None:
    assert isinstance(create("fake"), FakeSource)
    assert isinstance(create("prometheus", url="http://127.0.0.1:9090"), PrometheusSource)
    with pytest.raises(SpecError, match="unknown metric source 'datadog'"):
        create("datadog")
