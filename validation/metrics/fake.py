"""In-memory MetricSource for unit tests: feed it arrays and counts, it records every query.

source = (FakeSource()
          .values("latency", "stable", [50, 52, 49])
          .counts("errors", "canary", successes=990, failures=10))
source.query("latency", "stable", 60).values   # array([50., 52., 49.])
source.calls                                   # [("latency", "stable", 60)]
source.query("ttft", "stable", 60)             # NoDataError
FakeSource(error=MetricSourceError("down"))    # every query raises it; offline
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from validation.metrics.base import (
    FloatArray,
    Histogram,
    MetricSourceError,
    NoDataError,
    Sample,
    check_window,
    observations,
)


class FakeSource:
    """A MetricSource answering from what the test put in."""

    def __init__(self, error: MetricSourceError | None = None) -> None:
        self._samples: dict[tuple[str, str], Sample] = {}
        self._error = error
        self.calls: list[tuple[str, str, float]] = []

    def put(self, sample: Sample) -> FakeSource:
        self._samples[(str(sample.metric), sample.variant)] = sample
        return self

    def values(self, metric: str, variant: str, values: Sequence[float] | FloatArray) -> FakeSource:
        return self.put(
            Sample(metric, variant, 0.0, "fake", values=observations(values), unit="ms")
        )

    def counts(self, metric: str, variant: str, *, successes: int, failures: int) -> FakeSource:
        return self.put(
            Sample(metric, variant, 0.0, "fake", successes=successes, failures=failures)
        )

    def histogram(
        self, metric: str, variant: str, upper_bounds: Sequence[float], counts: Sequence[float]
    ) -> FakeSource:
        hist = Histogram(tuple(upper_bounds), tuple(counts))
        return self.put(Sample(metric, variant, 0.0, "fake", histogram=hist, unit="ms"))

    def query(self, metric: str, variant: str, window_s: float) -> Sample:
        check_window(window_s)
        self.calls.append((str(metric), variant, window_s))
        if self._error is not None:
            raise self._error
        sample = self._samples.get((str(metric), variant))
        if sample is None or (sample.n == 0 and sample.value is None):
            raise NoDataError(f"fake: no {metric!r} data for variant {variant!r}")
        return replace(sample, window_s=window_s)

    def is_online(self) -> bool:
        return self._error is None
