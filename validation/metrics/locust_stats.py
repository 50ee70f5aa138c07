"""LocustSource: client-side evidence from a Locust run, per variant.

Two inputs, both written by one load run (infra/load: `locust --headless --csv PREFIX`):

1. The per-request JSONL (preferred: raw observations). One JSON object per line, one
   line per request sent; its producer is infra/load/locustfile.py and its full field
   list is in infra/load/records.py. This consumer reads (others are ignored):

       variant     str          who answered: the X-Canaryflow-Variant response header,
                                "unknown" when there was no response (counted for no one)
       status      int          HTTP status; 0 when no response (connection error, timeout)
       ok          bool         200 with a well-formed (and, streamed, complete) body
       latency_ms  number       client-side send -> last byte
       ttft_ms     number|null  send -> first streamed chunk; null when not streamed
     optional:
       ts          number       send time, seconds since the epoch (enables windowing)
       answer      str|null     the golden answer, when the prompt has one
       completion  str          the generated text; quality = exact_match(completion, answer)

   Example: {"ts": 1767225600.5, "variant": "canary", "status": 200, "ok": true,
             "latency_ms": 52.1, "ttft_ms": 11.0, "answer": "46", "completion": "46"}

2. Locust's own `<prefix>_stats.csv`: used for error counts only when there is no JSONL,
   from the row whose Name is `name_template.format(variant=...)` ("chat [canary]"; its
   percentiles are not raw observations, so latency needs the JSONL).

Metrics: errors (failure = not ok), latency and ttft (of ok requests, ms), quality (ok
requests with a golden answer). Lines that are not valid records are skipped and counted
in `Sample.notes`.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from validation.golden import exact_match
from validation.metrics.base import (
    Metric,
    MetricSourceError,
    NoDataError,
    Sample,
    check_window,
    observations,
    unsupported,
)

REQUIRED = ("variant", "latency_ms", "ok", "status")
COLUMNS = (*REQUIRED, "ttft_ms", "ts", "answer", "completion")
SUPPORTED = [Metric.ERRORS, Metric.LATENCY, Metric.TTFT, Metric.QUALITY]


def read_requests(path: Path) -> tuple[pd.DataFrame, int]:
    """The request records of a JSONL file as a frame, and how many lines were skipped."""
    rows: list[dict[str, Any]] = []
    skipped = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if not isinstance(rec, dict) or any(k not in rec for k in REQUIRED):
                skipped += 1
                continue
            rows.append({k: rec.get(k) for k in COLUMNS})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame, skipped


class LocustSource:
    """Answers from a Locust run's per-request JSONL, or its stats CSV for error counts."""

    def __init__(
        self,
        requests_jsonl: Path | str | None = None,
        csv_prefix: Path | str | None = None,
        *,
        name_template: str = "chat [{variant}]",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if requests_jsonl is None and csv_prefix is None:
            raise ValueError("give requests_jsonl, csv_prefix, or both")
        self.requests_jsonl = None if requests_jsonl is None else Path(requests_jsonl)
        self.stats_csv = None if csv_prefix is None else Path(f"{csv_prefix}_stats.csv")
        self._name_template = name_template
        self._clock = clock

    def query(self, metric: str, variant: str, window_s: float) -> Sample:
        check_window(window_s)
        if metric not in SUPPORTED:
            raise unsupported("locust", str(metric), SUPPORTED)
        if self.requests_jsonl is not None and self.requests_jsonl.exists():
            return self._from_jsonl(str(metric), variant, window_s)
        if self.stats_csv is not None and self.stats_csv.exists() and metric == Metric.ERRORS:
            return self._errors_from_csv(variant, window_s)
        raise NoDataError(
            f"locust: no {metric!r} data (JSONL {self.requests_jsonl}, CSV {self.stats_csv}); "
            f"latency, ttft and quality need the per-request JSONL"
        )

    def is_online(self) -> bool:
        files = (self.requests_jsonl, self.stats_csv)
        return any(p is not None and p.exists() for p in files)

    def _from_jsonl(self, metric: str, variant: str, window_s: float) -> Sample:
        assert self.requests_jsonl is not None
        frame, skipped = read_requests(self.requests_jsonl)
        rows = frame[frame["variant"] == variant]
        ts = pd.to_numeric(rows["ts"], errors="coerce")
        if ts.notna().any():
            rows = rows[ts >= self._clock() - window_s]
        notes = (f"skipped {skipped} malformed lines",) if skipped else ()
        sample = _sample_of(metric, variant, window_s, rows, notes)
        if sample.n == 0:
            raise NoDataError(f"locust: no {metric!r} observations for {variant!r} in the window")
        return sample

    def _errors_from_csv(self, variant: str, window_s: float) -> Sample:
        assert self.stats_csv is not None
        name = self._name_template.format(variant=variant)
        total = failed = 0
        try:
            with self.stats_csv.open(encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f):
                    if row.get("Name") == name:
                        total += int(row["Request Count"])
                        failed += int(row["Failure Count"])
        except (KeyError, ValueError) as exc:
            raise MetricSourceError(f"{self.stats_csv} is not a Locust stats CSV: {exc}") from exc
        if total == 0:
            raise NoDataError(f"locust: no row named {name!r} with requests in {self.stats_csv}")
        return Sample(Metric.ERRORS, variant, window_s, "locust-csv",
                      successes=total - failed, failures=failed)  # fmt: skip


def _sample_of(
    metric: str, variant: str, window_s: float, rows: pd.DataFrame, notes: tuple[str, ...]
) -> Sample:
    ok = rows["ok"].astype(bool).to_numpy()
    base: dict[str, Any] = {"metric": metric, "variant": variant, "window_s": window_s,
                            "source": "locust", "notes": notes}  # fmt: skip
    if metric == Metric.ERRORS:
        return Sample(**base, successes=int(ok.sum()), failures=int((~ok).sum()))
    if metric == Metric.QUALITY:
        right, wrong = _grade(rows[ok])
        return Sample(**base, successes=right, failures=wrong)
    column = "latency_ms" if metric == Metric.LATENCY else "ttft_ms"
    values = pd.to_numeric(rows[column][ok], errors="coerce").to_numpy(dtype=np.float64)
    return Sample(**base, values=observations(values), unit="ms")


def _grade(rows: pd.DataFrame) -> tuple[int, int]:
    """(right, wrong) over the rows that carry a golden answer."""
    golden = rows[rows["answer"].map(lambda a: isinstance(a, str))]
    right = sum(
        exact_match(c if isinstance(c, str) else "", a)
        for c, a in zip(golden["completion"], golden["answer"], strict=True)
    )
    return right, len(golden) - right
