"""PairedSource: the equal-conditions window's records (infra/load/paired.py), per variant.

Both variants answered the same prompts at the same concurrency, streamed, sent directly
(not through the router), so these are the samples the analysis compares for speed and
quality. Only complete pairs count (both halves in the file); speed metrics use the ok
halves, the paired metrics the pairs whose two halves are both ok, one per row (the first:
a window that cycled a set smaller than it needed repeats rows, and a repeated row is no
new evidence of quality).

    latency           values: send -> end of stream, ms, one per ok request
    ttft              values: send -> first chunk carrying content, ms
    itl               values: mean gap between successive content chunks, ms, one per ok
                      request with at least two chunks (per-request means keep the
                      observations independent; the raw gaps are in the records)
    quality           values: the scorer's score in [0, 1] per row; successes/failures:
                      rows scoring 1.0 (a pass for pass/fail scorers) / the rest
    quality_paired    canary only: values = canary score - stable score per row
    agreement         canary only: successes = rows whose normalized outputs are equal
                      (whitespace collapsed, case folded), failures = the others
    length_ratio      canary only: value = mean canary output length / mean stable output
                      length (characters); values = canary - stable length per row

The scorer is `(row_id, output) -> float in [0, 1]`; it is called once per (row, output)
and cached (an LLM judge is slow). None: the quality metrics are NoDataError.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from validation.metrics.base import (
    Metric,
    MetricSourceError,
    NoDataError,
    Sample,
    check_window,
    observations,
    unsupported,
)

Scorer = Callable[[str, str], float]
SUPPORTED = [Metric.LATENCY, Metric.TTFT, Metric.ITL, Metric.QUALITY, Metric.QUALITY_PAIRED,
             Metric.AGREEMENT, Metric.LENGTH_RATIO]  # fmt: skip
_CANARY_ONLY = (Metric.QUALITY_PAIRED, Metric.AGREEMENT, Metric.LENGTH_RATIO)
Record = dict[str, Any]


def read_records(paths: Iterable[Path]) -> list[Record]:
    """Every JSON object line of the files that exist (torn or foreign lines skipped)."""
    records: list[Record] = []
    for path in paths:
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and "variant" in rec:
                    records.append(rec)
    return records


def normalized(text: str) -> str:
    """What 'the same answer' means for agreement: whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()


class PairedSource:
    """Answers from paired-window JSONL files; `scorer` grades outputs for quality."""

    def __init__(
        self,
        records: Path | Sequence[Path],
        scorer: Scorer | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._paths = [records] if isinstance(records, Path) else list(records)
        self._scorer = scorer
        self._scores: dict[tuple[str, str], float] = {}
        self._clock = clock

    def query(self, metric: str, variant: str, window_s: float) -> Sample:
        check_window(window_s)
        if metric not in SUPPORTED:
            raise unsupported("paired", str(metric), SUPPORTED)
        if metric in _CANARY_ONLY and variant != "canary":
            raise NoDataError(
                f"paired: {str(metric)!r} compares the canary with the stable on the same rows; "
                "query it for variant 'canary'"
            )
        pairs = self.pairs(window_s)
        sample = self._sample(str(metric), variant, window_s, pairs)
        if sample.n == 0 and sample.value is None:
            raise NoDataError(
                f"paired: no {str(metric)!r} observations for {variant!r} in the last "
                f"{window_s:g} s ({len(pairs)} complete pairs)"
            )
        return sample

    def is_online(self) -> bool:
        return any(p.exists() for p in self._paths)

    def pairs(self, window_s: float) -> list[tuple[Record, Record]]:
        """(canary, stable) halves of every complete pair sent in the last `window_s` s."""
        since = self._clock() - window_s
        halves: dict[str, dict[str, Record]] = {}
        for rec in read_records(self._paths):
            pair_id = rec.get("pair_id")
            if rec.get("origin") != "paired" or not isinstance(pair_id, str):
                continue
            if float(rec.get("ts") or 0.0) >= since:
                halves.setdefault(pair_id, {})[str(rec["variant"])] = rec
        return [(h["canary"], h["stable"]) for h in halves.values() if len(h) == 2
                and "canary" in h and "stable" in h]  # fmt: skip

    def score(self, row_id: str, output: str) -> float:
        if self._scorer is None:
            raise NoDataError("paired: no scorer was given, so quality cannot be graded")
        key = (row_id, output)
        if key not in self._scores:
            value = float(self._scorer(row_id, output))
            if not 0.0 <= value <= 1.0:
                raise MetricSourceError(
                    f"the scorer gave {value} for row {row_id!r}; scores must lie in [0, 1]"
                )
            self._scores[key] = value
        return self._scores[key]

    def _sample(
        self, metric: str, variant: str, window_s: float, pairs: list[tuple[Record, Record]]
    ) -> Sample:
        base: dict[str, Any] = {"metric": metric, "variant": variant, "window_s": window_s,
                                "source": "paired"}  # fmt: skip
        if metric in (Metric.LATENCY, Metric.TTFT, Metric.ITL):
            own = [p[0] if variant == "canary" else p[1] for p in pairs]
            return Sample(**base, values=_timings(metric, [r for r in own if r.get("ok")]),
                          unit="ms")  # fmt: skip
        both = _one_per_row([(c, s) for c, s in pairs if c.get("ok") and s.get("ok")])
        failed = sum(not (c.get("ok") and s.get("ok")) for c, s in pairs)
        notes = (f"{failed} pairs with a failed half left out",) if failed else ()
        if metric == Metric.AGREEMENT:
            same = sum(normalized(_text(c)) == normalized(_text(s)) for c, s in both)
            return Sample(**base, successes=same, failures=len(both) - same, notes=notes)
        if metric == Metric.LENGTH_RATIO:
            lengths = np.array([(len(_text(c)), len(_text(s))) for c, s in both], dtype=float)
            if not both or lengths[:, 1].sum() == 0:
                return Sample(**base, values=observations([]), notes=notes)
            ratio = float(lengths[:, 0].mean() / lengths[:, 1].mean())
            return Sample(**base, values=lengths[:, 0] - lengths[:, 1], value=ratio,
                          unit="chars", notes=notes)  # fmt: skip
        scores = np.array([(self._row_score(c), self._row_score(s)) for c, s in both],
                          dtype=float).reshape(-1, 2)  # fmt: skip
        if metric == Metric.QUALITY_PAIRED:
            return Sample(**base, values=scores[:, 0] - scores[:, 1], notes=notes)
        own_scores = scores[:, 0] if variant == "canary" else scores[:, 1]
        passed = int((own_scores >= 1.0).sum())
        return Sample(**base, values=own_scores, successes=passed,
                      failures=len(own_scores) - passed, notes=notes)  # fmt: skip

    def _row_score(self, rec: Record) -> float:
        return self.score(str(rec.get("row_id")), _text(rec))


def _one_per_row(pairs: list[tuple[Record, Record]]) -> list[tuple[Record, Record]]:
    """The first answered pair of each row (a window that cycled a small set repeats rows)."""
    seen: dict[str, tuple[Record, Record]] = {}
    for pair in sorted(pairs, key=lambda p: float(p[0].get("ts") or 0.0)):
        seen.setdefault(str(pair[0].get("row_id")), pair)
    return list(seen.values())


def _text(rec: Record) -> str:
    completion = rec.get("completion")
    return completion if isinstance(completion, str) else ""


def _timings(metric: str, records: list[Record]) -> Any:
    if metric == Metric.ITL:
        means = [float(np.mean(g)) for r in records if isinstance(g := r.get("itl_ms"), list) and g]
        return observations(means)
    column = "latency_ms" if metric == Metric.LATENCY else "ttft_ms"
    return observations([float(v) for r in records if (v := r.get(column)) is not None])
