"""The golden-set gate: scoring with the fake answerer, both gate conditions, one real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.demo_model.train import GOLDEN_FILE
from infra.errors import QualityGateError
from validation.golden import Example, read_jsonl
from validation.quality import (
    FakeAnswerer,
    QualityScore,
    gate,
    p_value_worse,
    raise_if_failed,
    score,
    wilson,
)

GOLDEN = [Example(f"{a}+{a}", str(2 * a)) for a in range(100)]


def test_wilson_interval_known_values() -> None:
    assert wilson(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert wilson(10, 20) == pytest.approx((0.2993, 0.7007), abs=1e-4)
    assert wilson(20, 20) == pytest.approx((0.8389, 1.0), abs=1e-4)


def test_score_counts_exact_matches_and_keeps_misses() -> None:
    answerer = FakeAnswerer({"1+1": "2", "2+2": " 4 ", "3+3": "6 apples"}, default="?")
    examples = [Example("1+1", "2"), Example("2+2", "4"), Example("3+3", "6"), Example("4+4", "8")]

    result = score(answerer, examples)

    assert (result.correct, result.n, result.accuracy) == (2, 4, 0.5)
    assert [m.prompt for m in result.misses] == ["3+3", "4+4"]
    assert result.misses[0].got == "6 apples"
    assert answerer.calls == [["1+1", "2+2", "3+3", "4+4"]]  # one batched call


def test_fake_answerer_takes_a_function() -> None:
    def answer(prompt: str) -> str:
        a, b = prompt.split("+")
        return str(int(a) + int(b))

    assert score(FakeAnswerer(answer), GOLDEN).accuracy == 1.0


def test_empty_golden_set_cannot_pass() -> None:
    with pytest.raises(QualityGateError, match="golden set is empty"):
        score(FakeAnswerer({}), [])


def test_answerer_returning_too_few_answers_is_a_bug() -> None:
    class Lazy:
        def complete(self, prompts: object) -> list[str]:
            return []

    with pytest.raises(ValueError, match="returned 0 completions for 100 prompts"):
        score(Lazy(), GOLDEN)


def test_gate_passes_above_threshold_without_champion() -> None:
    candidate = score(FakeAnswerer.scoring(GOLDEN, correct=90), GOLDEN)

    result = gate(candidate, threshold=0.8)

    assert result.passed
    assert result.reasons == ()
    assert result.delta is None
    raise_if_failed(result)  # no-op


def test_gate_fails_below_threshold_with_the_numbers() -> None:
    candidate = score(FakeAnswerer.scoring(GOLDEN, correct=70), GOLDEN)

    result = gate(candidate, threshold=0.8)

    assert not result.passed
    with pytest.raises(QualityGateError) as e:
        raise_if_failed(result)
    msg = str(e.value)
    assert "0.700 (70/100, 95% CI 0.604-0.781)" in msg
    assert "below the threshold 0.800" in msg
    assert "'70+70' -> 'not 140' (want '140')" in msg


def test_gate_fails_on_regression_beyond_max_regression() -> None:
    champion = QualityScore.from_counts(95, 100)
    candidate = score(FakeAnswerer.scoring(GOLDEN, correct=85), GOLDEN)

    result = gate(candidate, threshold=0.8, champion=champion, max_regression=0.05)

    assert not result.passed
    assert result.delta == pytest.approx(-0.10)
    assert result.p_value is not None
    assert result.p_value < 0.05
    with pytest.raises(QualityGateError, match=r"regressed vs champion by 0\.100"):
        raise_if_failed(result)


def test_gate_tolerates_regression_within_max_regression() -> None:
    champion = QualityScore.from_counts(92, 100)
    candidate = score(FakeAnswerer.scoring(GOLDEN, correct=90), GOLDEN)

    result = gate(candidate, threshold=0.8, champion=champion, max_regression=0.05)

    assert result.passed
    assert result.p_value is not None
    assert result.p_value > 0.05  # and the difference is noise


def test_gate_fails_on_both_counts_and_says_both() -> None:
    champion = QualityScore.from_counts(90, 100)
    candidate = score(FakeAnswerer.scoring(GOLDEN, correct=40), GOLDEN)

    result = gate(candidate, threshold=0.5, champion=champion, max_regression=0.0)

    assert len(result.reasons) == 2


def test_better_candidate_passes_with_high_p_value() -> None:
    champion = QualityScore.from_counts(80, 100)
    candidate = QualityScore.from_counts(95, 100)

    result = gate(candidate, threshold=0.5, champion=champion)

    assert result.passed
    assert p_value_worse(candidate, champion) > 0.99


def test_borderline_pass_gets_a_note() -> None:
    result = gate(QualityScore.from_counts(17, 20), threshold=0.8)

    assert result.passed
    assert any("inside the candidate's 95% CI" in n for n in result.notes)


def test_bad_gate_parameters() -> None:
    with pytest.raises(ValueError, match="threshold"):
        gate(QualityScore.from_counts(1, 2), threshold=80)


def test_untrained_model_scores_zero_and_fails(untrained_model: Path) -> None:
    from infra.local_generator import TransformersGenerator

    golden = read_jsonl(untrained_model / GOLDEN_FILE)[:20]

    result = score(TransformersGenerator(untrained_model), golden)

    assert result.n == 20
    assert result.accuracy <= 0.1
    with pytest.raises(QualityGateError, match=r"below the threshold 0\.500"):
        raise_if_failed(gate(result, threshold=0.5))
