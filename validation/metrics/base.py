"""The metric-source seam: `MetricSource.query(metric, variant, window_s) -> Sample`.

A source answers one metric for one variant over the last `window_s` seconds with the raw
evidence where it has it (a list of latencies, success/failure counts, histogram bucket
deltas), so the analysis computes its own statistics instead of trusting a pre-aggregated
number. One file per backend, all behind the same two methods (like Flagger's
`RunQuery` / `IsOnline`):

    source = FakeSource().values("latency", "canary", [51.0, 48.2, 60.1])
    sample = source.query(Metric.LATENCY, "canary", window_s=60)
    sample.values, sample.n          # array([51. , 48.2, 60.1]), 3
    source.query("errors", "canary", 60)   # raises NoDataError: nothing recorded

Metrics (`Metric`) and what each Sample carries:

    errors        successes / failures: request counts (failure = the source's notion of a
                  failed request: HAProxy 5xx, Locust failure, captured status >= 500)
    latency       values (ms, raw) or histogram (ms bucket bounds) of end-to-end latency
    ttft          the same for time to first token (streamed requests only)
    quality       successes / failures: golden prompts answered exactly right / wrong
    tokens_per_s  value: generated tokens per second over the window
    itl           values (ms) or histogram of inter-token latency (streamed requests)
    quality_paired  values: canary score - stable score per evaluation row both answered
                  (scores in [0, 1]); query(variant="canary")
    agreement     successes / failures: paired rows whose normalized outputs are equal /
                  differ; query(variant="canary")
    length_ratio  value: mean canary output length / mean stable output length on the same
                  rows; values: per-row length difference (chars); query(variant="canary")
    cut_at_max_tokens  successes / failures: answers that ended otherwise / were cut at
                  max_tokens (finish_reason "length"), per variant
    empty_answers successes / failures: non-empty / empty (blank) answers, per variant

Errors (defined in infra/errors.py, re-exported here):

    MetricSourceError   a source failed: unreachable, bad answer, unsupported metric
    └── NoDataError     the source works but has no data for this metric/variant/window
    DriftError          the drift report could not be computed (bad frames, Evidently failed)

The analysis turns any MetricSourceError into an INCONCLUSIVE check, never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from infra.errors import DriftError as DriftError
from infra.errors import MetricSourceError as MetricSourceError
from infra.errors import NoDataError as NoDataError

FloatArray = npt.NDArray[np.float64]


class Metric(StrEnum):
    """The metric names every source understands (a subset of them, per source)."""

    ERRORS = "errors"
    LATENCY = "latency"
    TTFT = "ttft"
    QUALITY = "quality"
    TOKENS_PER_S = "tokens_per_s"
    ITL = "itl"
    QUALITY_PAIRED = "quality_paired"
    # reference-free live checks (owner "pairedwin"; see paired.py and traffic.py)
    AGREEMENT = "agreement"
    LENGTH_RATIO = "length_ratio"
    CUT_AT_MAX_TOKENS = "cut_at_max_tokens"
    EMPTY_ANSWERS = "empty_answers"


@dataclass(frozen=True)
class Histogram:
    """Per-bucket (not cumulative) counts over the window; bounds ascend, last may be +Inf."""

    upper_bounds: tuple[float, ...]
    counts: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.upper_bounds) != len(self.counts) or not self.upper_bounds:
            raise ValueError("a histogram needs one count per bucket bound, and at least one")
        if any(b >= a for a, b in zip(self.upper_bounds[1:], self.upper_bounds, strict=False)):
            raise ValueError(f"bucket bounds must ascend strictly: {self.upper_bounds}")

    @property
    def total(self) -> float:
        return float(sum(self.counts))

    def as_values(self) -> FloatArray:
        """Bucketed observations as their bucket's upper bound (+Inf: the highest finite
        one). Ties at bounds make a quantile CS conservative only when buckets are fine."""
        bounds = np.asarray(self.upper_bounds, dtype=np.float64)
        finite = bounds[np.isfinite(bounds)]
        top = float(finite[-1]) if finite.size else 0.0
        bounds = np.where(np.isfinite(bounds), bounds, top)
        counts = np.clip(np.round(np.asarray(self.counts, dtype=np.float64)), 0, None)
        return np.repeat(bounds, counts.astype(int))


@dataclass(frozen=True, eq=False)
class Sample:
    """What a source measured for one metric, variant and window (see the module doc)."""

    metric: str
    variant: str
    window_s: float
    source: str
    values: FloatArray | None = None
    successes: int | None = None
    failures: int | None = None
    histogram: Histogram | None = None
    value: float | None = None
    unit: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def n(self) -> int:
        """How many observations back this sample (0 when it is a bare value)."""
        if self.values is not None:
            return int(self.values.size)
        if self.successes is not None and self.failures is not None:
            return self.successes + self.failures
        if self.histogram is not None:
            return round(self.histogram.total)
        return 0

    @property
    def rate(self) -> float | None:
        """failures / n for count samples (the error rate; 1 - accuracy for quality)."""
        if self.successes is None or self.failures is None or self.n == 0:
            return None
        return self.failures / self.n


def observations(values: Sequence[float] | FloatArray) -> FloatArray:
    """A float64 array of finite values (NaN/inf dropped: they are not observations)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def check_window(window_s: float) -> None:
    if not window_s > 0:  # NaN fails this too
        raise ValueError(f"window_s must be > 0 seconds, got {window_s}")


def unsupported(source: str, metric: str, supported: Sequence[str]) -> MetricSourceError:
    return MetricSourceError(
        f"{source} cannot measure {metric!r}; it measures {', '.join(supported)}. Route that "
        f"metric to another source (RoutedSource) or disable its check in the policy"
    )


class MetricSource(Protocol):
    """Where the analysis gets its numbers. Raise NoDataError when there are none."""

    def query(self, metric: str, variant: str, window_s: float) -> Sample: ...

    def is_online(self) -> bool: ...
