"""PairedSource on hand-written paired records: speed per variant, paired quality, live checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from validation.metrics.base import Metric, MetricSourceError, NoDataError
from validation.metrics.paired import PairedSource, normalized

NOW = 1_767_225_600.0


def half(pair: str, row: str, variant: str, text: str, **extra: Any) -> dict[str, Any]:
    record = {"ts": NOW - 5, "variant": variant, "model_version": "", "status": 200, "ok": True,
              "latency_ms": 100.0, "ttft_ms": 20.0, "prompt": "p", "answer": None,
              "completion": text, "request_id": "cf-load-paired-x", "error": None,
              "origin": "paired", "pair_id": pair, "row_id": row, "itl_ms": [10.0, 30.0],
              "finish_reason": "stop"}  # fmt: skip
    return {**record, **extra}


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"torn', encoding="utf-8")
    return path


EXPECTED = {"a": "42", "b": "Paris", "c": "blue"}


def exact(row_id: str, output: str) -> float:
    return 1.0 if output.strip() == EXPECTED[row_id] else 0.0


@pytest.fixture
def source(tmp_path: Path) -> PairedSource:
    records = [
        half("1", "a", "stable", "42"), half("1", "a", "canary", "42", latency_ms=150.0),
        half("2", "b", "stable", "Paris"), half("2", "b", "canary", " paris ", ttft_ms=40.0),
        half("3", "c", "stable", "blue"), half("3", "c", "canary", "green, I think", itl_ms=[5.0]),
        half("4", "a", "stable", "42"),  # its canary half never came: not a pair
        half("5", "b", "stable", "Paris"), half("5", "b", "canary", "", ok=False, status=500),
        half("6", "a", "stable", "42", ts=NOW - 500), half("6", "a", "canary", "0", ts=NOW - 500),
        half("7", "a", "stable", "42", ts=NOW - 1), half("7", "a", "canary", "0", ts=NOW - 1),
    ]  # fmt: skip
    return PairedSource(write(tmp_path / "paired.jsonl", records), exact, clock=lambda: NOW)


def test_speed_metrics_come_per_variant_from_ok_halves_of_complete_pairs(
    source: PairedSource,
) -> None:
    latency = source.query(Metric.LATENCY, "canary", 60).values
    assert latency is not None
    assert sorted(latency) == [100.0, 100.0, 100.0, 150.0]  # pair 7 repeats row a: kept
    ttft = source.query(Metric.TTFT, "canary", 60).values
    assert ttft is not None
    assert sorted(ttft) == [20.0, 20.0, 20.0, 40.0]
    itl = source.query(Metric.ITL, "canary", 60).values  # per-request mean gap
    assert itl is not None
    assert sorted(itl) == [5.0, 20.0, 20.0, 20.0]
    assert source.query(Metric.LATENCY, "stable", 60).n == 5  # pair 5's stable half is ok


def test_paired_quality_is_the_per_row_difference_on_rows_both_answered_once_each(
    source: PairedSource,
) -> None:
    diff = source.query(Metric.QUALITY_PAIRED, "canary", 60)
    assert diff.values is not None
    assert sorted(diff.values) == [-1.0, -1.0, 0.0]
    assert any("failed half" in n for n in diff.notes)
    quality = source.query(Metric.QUALITY, "stable", 60)
    assert (quality.successes, quality.failures) == (3, 0)
    canary = source.query(Metric.QUALITY, "canary", 60)
    assert (canary.successes, canary.failures) == (1, 2)


def test_agreement_and_length_ratio_compare_the_same_rows(source: PairedSource) -> None:
    agreement = source.query(Metric.AGREEMENT, "canary", 60)
    assert (agreement.successes, agreement.failures) == (2, 1)  # " paris " == "Paris"
    ratio = source.query(Metric.LENGTH_RATIO, "canary", 60)
    canary, stable = [2, 7, 14], [2, 5, 4]
    assert ratio.value == pytest.approx(np.mean(canary) / np.mean(stable))
    assert ratio.values is not None
    assert sorted(ratio.values) == [0.0, 2.0, 10.0]


def test_canary_only_metrics_refuse_the_stable(source: PairedSource) -> None:
    for metric in (Metric.QUALITY_PAIRED, Metric.AGREEMENT, Metric.LENGTH_RATIO):
        with pytest.raises(NoDataError, match="variant 'canary'"):
            source.query(metric, "stable", 60)


def test_scores_are_cached_and_must_lie_in_the_unit_interval(tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []

    def scorer(row_id: str, output: str) -> float:
        calls.append((row_id, output))
        return 0.5

    path = write(
        tmp_path / "p.jsonl", [half("1", "a", "stable", "x"), half("1", "a", "canary", "x")]
    )
    source = PairedSource(path, scorer, clock=lambda: NOW)
    source.query(Metric.QUALITY, "canary", 60)
    source.query(Metric.QUALITY_PAIRED, "canary", 60)
    assert calls == [("a", "x")]
    bad = PairedSource(path, lambda r, o: 1.5, clock=lambda: NOW)
    with pytest.raises(MetricSourceError, match=r"must lie in \[0, 1\]"):
        bad.query(Metric.QUALITY, "canary", 60)


def test_no_scorer_no_window_no_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.jsonl", [half("1", "a", "stable", "x"), half("1", "a", "canary", "x")]
    )
    with pytest.raises(NoDataError, match="no scorer"):
        PairedSource(path, clock=lambda: NOW).query(Metric.QUALITY, "canary", 60)
    with pytest.raises(NoDataError, match="0 complete pairs"):
        PairedSource(path, exact, clock=lambda: NOW + 600).query(Metric.LATENCY, "canary", 60)
    missing = PairedSource(tmp_path / "none.jsonl", exact)
    assert not missing.is_online()
    with pytest.raises(MetricSourceError, match="cannot measure 'errors'"):
        missing.query(Metric.ERRORS, "canary", 60)


def test_normalized_collapses_whitespace_and_case() -> None:
    assert normalized("  The\tAnswer \n") == normalized("the answer") == "the answer"
