"""Evidently drift on golden-task frames: same distribution, shifted operands, bad outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from validation.drift import (
    SHAPES,
    DriftResult,
    answer_shape,
    detect_drift,
    features,
    frame_from_examples,
)
from validation.golden import TaskSpec, sample
from validation.metrics.base import DriftError

N = 1_000


def golden_frame(spec: TaskSpec, seed: int, n: int = N) -> pd.DataFrame:
    return frame_from_examples(sample(spec, n, seed))


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return golden_frame(TaskSpec(), seed=1)


def test_features_are_lengths_and_answer_format() -> None:
    frame = pd.DataFrame(
        {"prompt": ["1+1", "10+10", None], "completion": ["-2", "20 apples", None]}
    )
    feats = features(frame)
    assert list(feats["prompt_length"]) == [3, 5, 0]
    assert list(feats["output_length"]) == [2, 9, 0]
    assert list(feats["answer_format"]) == ["number", "line", "empty"]
    with pytest.raises(DriftError, match="missing"):
        features(pd.DataFrame({"prompt": ["1+1"]}))


def test_answer_shapes_hold_for_any_model_not_only_integers() -> None:
    completions = pd.Series([
        "42", "-3.5e2", "1,024", "12%", "Paris", "The capital is Paris.", "line one\nline two",
        '{"city": "Paris"}', '[1, 2]', '{"city": ', "```python\nprint(1)\n```", "  ", None,
        '{\n  "a": 1\n}',
    ])  # fmt: skip
    assert list(answer_shape(completions)) == [
        "number", "number", "number", "number", "line", "line", "multiline",
        "json", "json", "json_invalid", "code", "empty", "empty", "json",
    ]  # fmt: skip
    assert set(answer_shape(completions)) <= set(SHAPES)


def test_same_distribution_has_no_drift(reference: pd.DataFrame, tmp_path: Path) -> None:
    html = tmp_path / "reports" / "drift.html"
    result = detect_drift(reference, golden_frame(TaskSpec(), seed=2), html_path=html)
    assert result.drift_share < 0.5
    assert not result.dataset_drift
    assert not any(c.drifted for c in result.columns)
    assert (result.n_reference, result.n_current) == (N, N)
    ks = result.column("prompt_length")
    assert ks.method == "ks"
    assert ks.p_value is not None
    assert ks.p_value > 0.05
    assert html.exists()
    assert html.stat().st_size > 10_000
    assert result.html_path == str(html)


def test_shifted_operand_range_is_drift(reference: pd.DataFrame) -> None:
    shifted = golden_frame(TaskSpec(min_operand=100, max_operand=999), seed=3)
    result = detect_drift(reference, shifted)
    assert result.dataset_drift
    assert result.drift_share >= 0.5
    drifted = {c.column for c in result.columns if c.drifted}
    assert {"prompt_length", "output_length", "prompt"} <= drifted
    assert "answer_format" not in drifted  # still integers
    text = result.column("prompt")
    assert text.p_value is None
    assert text.score > text.threshold


def test_broken_output_format_drifts_the_outputs(reference: pd.DataFrame) -> None:
    canary = golden_frame(TaskSpec(), seed=4)
    canary.loc[canary.index[::4], "completion"] = "I cannot help with that"
    result = detect_drift(reference, canary)
    drifted = {c.column for c in result.columns if c.drifted}
    assert drifted == {"answer_format", "output_length"}
    assert result.drift_share == pytest.approx(0.5)


def test_big_inputs_are_sampled_with_a_seed(reference: pd.DataFrame) -> None:
    current = golden_frame(TaskSpec(), seed=5, n=3_000)
    one = detect_drift(reference, current, max_rows=500, seed=7, text=False)
    two = detect_drift(reference, current, max_rows=500, seed=7, text=False)
    assert (one.n_reference, one.n_current) == (500, 500)
    assert [c.score for c in one.columns] == [c.score for c in two.columns]
    assert [c.column for c in one.columns] == ["prompt_length", "output_length", "answer_format"]
    prompts = detect_drift(reference, current, max_rows=500, seed=7, text=False, outputs=False)
    assert [c.column for c in prompts.columns] == ["prompt_length"]


def test_empty_input_is_a_drift_error(reference: pd.DataFrame) -> None:
    with pytest.raises(DriftError, match="rows on both sides"):
        detect_drift(reference, reference.iloc[:0])


def test_result_round_trips_as_json(reference: pd.DataFrame) -> None:
    result = detect_drift(reference, golden_frame(TaskSpec(), seed=6), text=False)
    assert DriftResult.model_validate_json(result.model_dump_json()) == result
