"""Every code scorer on right and wrong outputs; make_row_scorer; the validate-time refusals."""

from __future__ import annotations

import pytest

from infra.errors import MissingExpectationsError, UnknownScorerError
from validation.evaluation import EvalRow, ScorerSpec, make_row_scorer, score_row
from validation.evaluation.scorers import check_scorers


def row(**expectations: object) -> EvalRow:
    return EvalRow("r1", ({"role": "user", "content": "q"},), expectations)


CASES = [
    # kind, scorer options, expectations, right output, wrong output
    ("exact", {}, {"expected_response": "Paris"}, " Paris\n", "paris"),
    ("normalized", {}, {"expected_response": "Paris."}, "  PARIS ", "Lyon"),
    ("contains", {}, {"facts": ["Paris", "France"]}, "Paris is in France.", "Paris, Texas"),
    ("contains", {}, {"expected_response": "42"}, "the answer is 42", "the answer is 41"),
    ("regex", {"pattern": r"^ORD-\d{4}$"}, {}, "ORD-1234", "order 1234"),
    ("regex", {}, {"regex": r"\d+ km"}, "about 12 km", "far"),
    ("numeric", {"tolerance": 0.01}, {"expected_response": "3.14"}, "pi is 3.141", "3.2"),
    ("numeric", {}, {"numeric": {"value": 100, "tolerance": 5}}, "103 items", "106 items"),
    ("json_valid", {}, {}, '{"a": 1}', "{a: 1}"),
    ("json_schema", {}, {"json_schema": {"type": "object", "required": ["name"],
                                         "properties": {"name": {"type": "string"}}}},
     '{"name": "Ada"}', '{"name": 3}'),
    ("fields", {}, {"fields": {"name": "Ada", "year": 1815}}, '{"name": "ada", "year": 1815}',
     '{"name": "Ada", "year": 1816}'),
    ("fields", {"fields": ["name"]}, {"expected_response": '{"name": "Ada", "x": 1}'},
     '{"name": "Ada", "x": 2}', '{"name": "Bob"}'),
    ("length", {"min_length": 2, "max_length": 5}, {}, "abcd", "abcdefgh"),
    ("length", {"max_length": 2, "unit": "words"}, {}, "two words", "three words here"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "opts", "exp", "right", "wrong"), CASES)
def test_scorer_passes_right_and_fails_wrong(
    kind: str, opts: dict[str, object], exp: dict[str, object], right: str, wrong: str
) -> None:
    spec = ScorerSpec.model_validate({"kind": kind, **opts})
    check_scorers([spec], [row(**exp)])
    good, bad = score_row(spec, row(**exp), right), score_row(spec, row(**exp), wrong)
    assert good.value == 1.0, good.rationale
    assert bad.value < 1.0, bad.rationale
    assert bad.rationale


def test_fractional_scorers_give_shares() -> None:
    spec = ScorerSpec(kind="fields")
    got = score_row(spec, row(fields={"a": 1, "b": 2}), '{"a": 1, "b": 3}')
    assert got.value == 0.5
    assert "1/2 fields right" in got.rationale
    half = score_row(ScorerSpec(kind="contains"), row(facts=["alpha", "beta"]), "alpha only")
    assert half.value == 0.5


def test_json_schema_names_the_violation() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    got = score_row(ScorerSpec(kind="json_schema", json_schema=schema), row(), '{"age": "x"}')
    assert got.value == 0.0
    assert "age" in got.rationale


def test_make_row_scorer_needs_every_scorer_to_pass() -> None:
    both = make_row_scorer([ScorerSpec(kind="normalized"), ScorerSpec(kind="length",
                                                                       max_length=6)])  # fmt: skip
    r = row(expected_response="Paris")
    assert both(r, "paris!") == 1.0
    assert both(r, "paris!!!!!") == 0.0  # normalized right, too long
    assert both(r, "Rome") == 0.0
    assert both(row(), "paris") == 0.0  # a row without the expectation never passes


def test_unknown_scorer_is_named() -> None:
    with pytest.raises(UnknownScorerError, match=r"unknown scorer 'bleu'.*exact, normalized"):
        check_scorers([ScorerSpec(kind="bleu")], [row(expected_response="x")])
    with pytest.raises(UnknownScorerError):
        make_row_scorer([ScorerSpec(kind="bleu")])


@pytest.mark.parametrize(("kind", "need"), [("exact", "expected_response"),
                                            ("json_schema", "json_schema"),
                                            ("numeric", "numeric"), ("fields", "fields"),
                                            ("regex", "regex")])  # fmt: skip
def test_scorer_without_its_expectations_is_refused(kind: str, need: str) -> None:
    rows = [row(expected_response="4"), EvalRow("r2", ({"role": "user", "content": "q"},), {})]
    if kind in ("exact", "numeric"):
        check_scorers([ScorerSpec(kind=kind)], rows[:1])  # the first row has what it needs
    first = 2 if kind in ("exact", "numeric") else 1
    with pytest.raises(MissingExpectationsError, match=f"needs expectations.{need}.*row {first}"):
        check_scorers([ScorerSpec(kind=kind)], rows)
