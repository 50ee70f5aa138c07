"""CaptureLogSource: server-side evidence from the serving middleware's capture JSONL.

The middleware (serving/middleware.py -> serving/capture.py `build_record`) writes one
record per captured POST to `<dir>/capture-<variant>-<host>-<pid>.jsonl` (rotated files
`<stem>.<utc-time>.jsonl`). The fields read here:

    ts           ISO-8601 UTC start time        variant      stable | canary
    status       HTTP status (500 on a crash)   latency_ms   server-side latency
    ttft_ms      first streamed chunk, or null  prompt       last user message (redacted)
    completion   the served text, or null       truncated    a body hit the capture limit
    request_id   X-Request-ID (load tests: cf-load-...)   model_version  the server's version
    finish_reason  the choice's finish_reason, or null

Metrics: quality (golden prompts answered exactly right: `validation.golden.exact_match`
of the completion against the golden answer, over 2xx records whose prompt is golden),
errors (failure = status >= 500), latency and ttft (2xx records, ms). `read_capture`
gives the same records as a frame for drift (`validation.drift`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from validation.golden import Example, exact_match
from validation.metrics.base import (
    Metric,
    NoDataError,
    Sample,
    check_window,
    observations,
    unsupported,
)

FIELDS = ("ts", "variant", "status", "latency_ms", "ttft_ms", "prompt", "completion", "truncated",
          "request_id", "model_version", "finish_reason")  # fmt: skip
SUPPORTED = [Metric.QUALITY, Metric.ERRORS, Metric.LATENCY, Metric.TTFT]


def capture_files(location: Path | Sequence[Path]) -> list[Path]:
    """The JSONL files of a capture directory (sorted), or the given files."""
    if isinstance(location, Path):
        return sorted(location.glob("*.jsonl")) if location.is_dir() else [location]
    return list(location)


def read_capture(files: Iterable[Path]) -> pd.DataFrame:
    """Captured records as a frame (FIELDS; `ts` as epoch seconds); bad lines skipped."""
    rows: list[tuple[Any, ...]] = []
    for path in files:
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn last line of a live file
                if isinstance(rec, dict) and "variant" in rec:
                    rows.append(tuple(rec.get(k) for k in FIELDS))
    frame = pd.DataFrame(rows, columns=list(FIELDS))
    stamps = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="ISO8601")
    frame["ts"] = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    frame["status"] = pd.to_numeric(frame["status"], errors="coerce").fillna(0).astype(int)
    return frame


def relabel(frame: pd.DataFrame, roles: Mapping[str, str] | None) -> pd.DataFrame:
    """Each record's variant from its model version's role now (`roles`: {version: 'stable'
    | 'canary'}, from the target's state); records of other versions are dropped. None: as
    written.

    A server's capture label is fixed when its container starts, and a promote renames the
    canary's container without restarting it: the stable of every release after the first
    promote writes 'canary'. Read as written, its users' requests counted as the canary's,
    and a step's drift found no stable rows at all (the retrained model of a demo was rolled
    back for a drift check that never got a result). The model version is the container's
    truth (one target serves one model; stable and canary are different versions)."""
    if roles is None:
        return frame
    role = frame["model_version"].astype(str).map(dict(roles))
    out = frame[role.notna()].copy()
    out["variant"] = role[role.notna()]
    return out


class CaptureLogSource:
    """Answers from capture JSONL files; re-reads them only when they changed."""

    def __init__(
        self,
        location: Path | str | Sequence[Path],
        golden: Iterable[Example] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._location = Path(location) if isinstance(location, str) else location
        self._answers = {ex.prompt: ex.answer for ex in golden}
        self._clock = clock
        self._cache: tuple[tuple[Any, ...], pd.DataFrame] | None = None

    def frame(self, variant: str | None = None, window_s: float | None = None) -> pd.DataFrame:
        """The records (of one variant, in the last `window_s` seconds when given)."""
        files = capture_files(self._location)
        key = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files if p.exists())
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, read_capture(p for p in files if p.exists()))
        frame = self._cache[1]
        if variant is not None:
            frame = frame[frame["variant"] == variant]
        if window_s is not None:
            frame = frame[frame["ts"] >= self._clock() - window_s]
        return frame

    def query(self, metric: str, variant: str, window_s: float) -> Sample:
        check_window(window_s)
        if metric not in SUPPORTED:
            raise unsupported("capture", str(metric), SUPPORTED)
        rows = self.frame(variant, window_s)
        sample = self._sample(str(metric), variant, window_s, rows)
        if sample.n == 0:
            raise NoDataError(
                f"capture: no {metric!r} records for {variant!r} in the last {window_s:g} s"
                + (
                    " (no golden prompts given)"
                    if metric == Metric.QUALITY and not self._answers
                    else ""
                )
            )
        return sample

    def is_online(self) -> bool:
        return any(p.exists() for p in capture_files(self._location))

    def _sample(self, metric: str, variant: str, window_s: float, rows: pd.DataFrame) -> Sample:
        base: dict[str, Any] = {"metric": metric, "variant": variant, "window_s": window_s,
                                "source": "capture"}  # fmt: skip
        status = rows["status"].to_numpy()
        if metric == Metric.ERRORS:
            failed = int((status >= 500).sum())
            return Sample(**base, successes=len(rows) - failed, failures=failed)
        ok = rows[(status >= 200) & (status < 300)]
        if metric == Metric.QUALITY:
            right, wrong = self._grade(ok)
            return Sample(**base, successes=right, failures=wrong)
        column = "latency_ms" if metric == Metric.LATENCY else "ttft_ms"
        values = pd.to_numeric(ok[column], errors="coerce").to_numpy(dtype=np.float64)
        return Sample(**base, values=observations(values), unit="ms")

    def _grade(self, ok: pd.DataFrame) -> tuple[int, int]:
        expected = ok["prompt"].map(self._answers)
        golden = ok[expected.notna()]
        right = sum(
            exact_match(c if isinstance(c, str) else "", a)
            for c, a in zip(golden["completion"], expected[expected.notna()], strict=True)
        )
        return right, len(golden) - right
