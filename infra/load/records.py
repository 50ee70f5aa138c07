"""The per-request results file (JSONL) and its per-variant summary.

One line per request the locustfile sent, in completion order:

    ts            float  wall clock (epoch s) when the request was sent
    variant       str    X-Canaryflow-Variant of the response ("unknown" when absent,
                         e.g. the router answered itself or the connection failed)
    model_version str    X-Canaryflow-Model-Version ("" when absent)
    status        int    HTTP status; 0 when no response came (connection error, timeout)
    ok            bool   200, a parsable body, and for streams a final `data: [DONE]`
    latency_ms    float  send -> last byte of the body (the whole stream when streaming)
    ttft_ms       float|null  send -> first body byte of a stream (the first SSE chunk);
                         null when not streaming or nothing arrived
    prompt        str    the last user message sent
    answer        str|null  the expected exact answer when the source knows it
    completion    str    the generated text (joined stream deltas); "" on failure
    request_id    str    X-Request-ID: sent by us, echoed by the serving middleware, so a
                         record joins the server's capture record of the same request
    error         str|null  why `ok` is false (short, no secrets)

Added for the paired window (infra/load/paired.py); old records without them read as
origin="load" (`origin_of`) and None for the rest:

    origin        "load" | "user" | "paired"   who sent it
    pair_id       str|null  the same id on both halves of a paired request
    row_id        str|null  the evaluation row the prompt came from
    itl_ms        list[float]|null  gaps between successive streamed content chunks
    finish_reason str|null  the choice's finish_reason ("stop", "length", ...)

For paired records `ttft_ms` is send -> the first chunk carrying content (not the first
byte), and `variant` is the variant the request was sent to directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field

UNKNOWN_VARIANT = "unknown"
Origin = Literal["load", "user", "paired"]
ORIGINS: tuple[Origin, ...] = ("load", "user", "paired")


class RequestRecord(TypedDict):
    """One line of the results file (see the module doc for each field)."""

    ts: float
    variant: str
    model_version: str
    status: int
    ok: bool
    latency_ms: float
    ttft_ms: float | None
    prompt: str
    answer: str | None
    completion: str
    request_id: str
    error: str | None
    origin: NotRequired[Origin]
    pair_id: NotRequired[str | None]
    row_id: NotRequired[str | None]
    itl_ms: NotRequired[list[float] | None]
    finish_reason: NotRequired[str | None]


def origin_of(record: RequestRecord | dict[str, Any]) -> str:
    """Who sent the request; records written before `origin` existed came from the load."""
    origin = record.get("origin")
    return origin if isinstance(origin, str) and origin else "load"


class VariantSummary(BaseModel):
    """What one variant got in one load run (latencies over successful requests only)."""

    model_config = ConfigDict(frozen=True)

    variant: str = Field(description="Variant name from the response header.")
    model_versions: list[str] = Field(description="Model versions seen for this variant.")
    count: int = Field(description="Requests answered by this variant (ok or not).")
    failures: int = Field(description="Requests that were not ok.")
    p50_ms: float | None = Field(description="Median end-to-end latency of ok requests.")
    p95_ms: float | None = Field(description="p95 end-to-end latency of ok requests.")
    ttft_p50_ms: float | None = Field(description="Median TTFT of ok streamed requests.")
    ttft_p95_ms: float | None = Field(description="p95 TTFT of ok streamed requests.")


def read_records(path: Path) -> list[RequestRecord]:
    """Every complete line of the results file (a torn last line is skipped)."""
    records: list[RequestRecord] = []
    if not path.exists():
        return records
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile (numpy's default method); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(records: Iterable[RequestRecord]) -> dict[str, VariantSummary]:
    """Per-variant counts, failures and latency quantiles, keyed and sorted by variant."""
    by_variant: dict[str, list[RequestRecord]] = {}
    for r in records:
        by_variant.setdefault(r["variant"], []).append(r)
    return {name: _summary(name, rows) for name, rows in sorted(by_variant.items())}


def _summary(name: str, rows: list[RequestRecord]) -> VariantSummary:
    ok = [r for r in rows if r["ok"]]
    latency = [r["latency_ms"] for r in ok]
    ttft = [t for r in ok if (t := r["ttft_ms"]) is not None]
    return VariantSummary(
        variant=name,
        model_versions=sorted({r["model_version"] for r in rows if r["model_version"]}),
        count=len(rows),
        failures=len(rows) - len(ok),
        p50_ms=percentile(latency, 0.50),
        p95_ms=percentile(latency, 0.95),
        ttft_p50_ms=percentile(ttft, 0.50),
        ttft_p95_ms=percentile(ttft, 0.95),
    )
