"""TrafficSource: errors and reference-free output checks over ALL traffic of a window.

Three kinds of traffic reach a variant, each recorded by someone else:

    origin  sent by                      recorded in                  a failure is
    load    Locust through the router    the load's requests.jsonl    not ok (client view)
    paired  the paired window, directly  paired.jsonl                 not ok (client view)
    user    anyone else, via the router  the servers' capture JSONL   status >= 500
                                         (request id not cf-load-...)

plus the router's own view of the routed part (load + user): HAProxy's per-server counters
through Prometheus (`PrometheusSource.router_failures`: 5xx, connection and response
errors of the variant's slot), which also count requests that never got a server's answer
(the router's 502/503 after a failed connect or a dropped response; the client sees them as
variant "unknown"). A routed failure seen by both the records and the router must count
once, so the routed failures are the larger of the two counts:

    failures = paired failures + max(load + user failures, router failures)
    n        = paired + load + user requests + (router failures beyond the records')

Metrics, per variant:

    errors             successes / failures as above
    cut_at_max_tokens  answered requests (ok, or user 2xx) with a known finish_reason:
                       failures = finish_reason "length" (cut at max_tokens)
    empty_answers      answered requests: failures = a blank completion

Without Prometheus (router=None) or when it fails, errors use the records alone and say so
in `Sample.notes`. `counts` gives the requests per origin and variant (for the top-up and
the blast radius); `user_counts` the user requests the capture holds since a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd  # type: ignore[import-untyped]

from infra.load.records import origin_of
from infra.load.wire import is_synthetic
from validation.metrics.base import (
    Metric,
    MetricSourceError,
    NoDataError,
    Sample,
    check_window,
    unsupported,
)
from validation.metrics.capture_log import capture_files, read_capture, relabel
from validation.metrics.paired import read_records

SUPPORTED = [Metric.ERRORS, Metric.CUT_AT_MAX_TOKENS, Metric.EMPTY_ANSWERS]
CaptureLocation = Path | Sequence[Path]


class RouterCounters(Protocol):
    """The router's per-variant failure count (PrometheusSource implements it)."""

    def router_failures(self, variant: str, window_s: float) -> int: ...


@dataclass(frozen=True)
class _Outcome:
    """One request, reduced to what these metrics need."""

    origin: str
    variant: str
    failed: bool
    answered: bool
    completion: str
    finish_reason: str | None


def user_frame(
    capture: CaptureLocation, since: float | None = None, roles: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Captured user requests (request id not synthetic), sent at or after `since`; with
    `roles` ({model version: role now}) labelled by the role each version has now
    (capture_log.relabel: a promoted stable still writes 'canary')."""
    files = [p for p in capture_files(capture) if p.exists()]
    frame = relabel(read_capture(files), roles)
    frame = frame[~frame["request_id"].map(is_synthetic).astype(bool)]
    if since is not None:
        frame = frame[frame["ts"] >= since]
    return frame


def user_counts(
    capture: CaptureLocation | None, since: float, roles: Mapping[str, str] | None = None
) -> dict[str, int]:
    """User requests per variant in the capture since `since` (epoch s); {} without one."""
    if capture is None:
        return {}
    counts = user_frame(capture, since, roles)["variant"].value_counts()
    return {str(k): int(v) for k, v in counts.items()}


class TrafficSource:
    """Answers from client records (load, paired), the capture (users) and the router."""

    def __init__(
        self,
        records: Sequence[Path] = (),
        capture: CaptureLocation | None = None,
        router: RouterCounters | None = None,
        *,
        clock: Callable[[], float] = time.time,
        roles: Mapping[str, str] | None = None,
    ) -> None:
        self._records, self._capture, self._router = list(records), capture, router
        self._clock, self._roles = clock, roles

    def query(self, metric: str, variant: str, window_s: float) -> Sample:
        check_window(window_s)
        if metric not in SUPPORTED:
            raise unsupported("traffic", str(metric), SUPPORTED)
        outcomes = [o for o in self.outcomes(window_s) if o.variant == variant]
        if metric == Metric.ERRORS:
            sample = self._errors(variant, window_s, outcomes)
        else:
            sample = _output_check(str(metric), variant, window_s, outcomes)
        if sample.n == 0:
            raise NoDataError(f"traffic: no {str(metric)!r} requests for {variant!r} in the last "
                              f"{window_s:g} s (load, paired or user)")  # fmt: skip
        return sample

    def is_online(self) -> bool:
        has_capture = self._capture is not None and bool(capture_files(self._capture))
        return has_capture or any(p.exists() for p in self._records)

    def counts(self, window_s: float) -> dict[str, dict[str, int]]:
        """Requests per origin, then variant, in the last `window_s` seconds."""
        out: dict[str, dict[str, int]] = {}
        for o in self.outcomes(window_s):
            out.setdefault(o.origin, {}).setdefault(o.variant, 0)
            out[o.origin][o.variant] += 1
        return out

    def outcomes(self, window_s: float) -> list[_Outcome]:
        since = self._clock() - window_s
        found = [_from_record(r) for r in read_records(self._records)
                 if float(r.get("ts") or 0.0) >= since]  # fmt: skip
        if self._capture is not None:
            users = user_frame(self._capture, since, self._roles)
            found += [_from_capture(row) for row in users.itertuples()]
        return found

    def _errors(self, variant: str, window_s: float, outcomes: list[_Outcome]) -> Sample:
        paired = [o for o in outcomes if o.origin == "paired"]
        routed = [o for o in outcomes if o.origin != "paired"]
        paired_failed = sum(o.failed for o in paired)
        routed_failed = sum(o.failed for o in routed)
        router, note = self._router_failures(variant, window_s)
        extra = max(0, router - routed_failed) if router is not None else 0
        failures = paired_failed + routed_failed + extra
        n = len(outcomes) + extra
        by_origin = {k: sum(o.origin == k for o in outcomes) for k in ("load", "user", "paired")}
        notes = (f"requests by origin {by_origin}; router failures {router}", *note)
        return Sample(Metric.ERRORS, variant, window_s, "traffic", successes=n - failures,
                      failures=failures, notes=notes)  # fmt: skip

    def _router_failures(self, variant: str, window_s: float) -> tuple[int | None, tuple[str, ...]]:
        if self._router is None:
            return None, ("no router counters: errors from the records alone",)
        try:
            return self._router.router_failures(variant, window_s), ()
        except MetricSourceError as exc:
            return None, (f"router counters unavailable ({exc}): records alone",)


def _from_record(rec: Mapping[str, Any]) -> _Outcome:
    ok = bool(rec.get("ok"))
    completion = rec.get("completion")
    finish = rec.get("finish_reason")
    return _Outcome(
        origin=origin_of(dict(rec)), variant=str(rec.get("variant")), failed=not ok,
        answered=ok, completion=completion if isinstance(completion, str) else "",
        finish_reason=finish if isinstance(finish, str) else None,
    )  # fmt: skip


def _from_capture(row: Any) -> _Outcome:
    status = int(row.status)
    completion, finish = row.completion, row.finish_reason
    return _Outcome(
        origin="user", variant=str(row.variant), failed=status >= 500,
        answered=200 <= status < 300, completion=completion if isinstance(completion, str) else "",
        finish_reason=finish if isinstance(finish, str) else None,
    )  # fmt: skip


def _output_check(metric: str, variant: str, window_s: float, outcomes: list[_Outcome]) -> Sample:
    answered = [o for o in outcomes if o.answered]
    if metric == Metric.CUT_AT_MAX_TOKENS:
        known = [o for o in answered if o.finish_reason is not None]
        bad = sum(o.finish_reason == "length" for o in known)
        n = len(known)
        notes: tuple[str, ...] = (f"{len(answered) - n} answers without finish_reason",)
    else:
        bad = sum(not o.completion.strip() for o in answered)
        n, notes = len(answered), ()
    return Sample(metric, variant, window_s, "traffic", successes=n - bad, failures=bad,
                  notes=notes)  # fmt: skip
