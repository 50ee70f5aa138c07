"""Code scorers: one pure function per kind, `(row, output) -> Score(value, rationale)`.

The same functions run in three places, so a row scores the same everywhere:
- `mlflow_scoring.mlflow_scorers` wraps each in `mlflow.genai.scorers.scorer` (or uses the
  pinned MLflow's built-in `RegexMatch` / `ResponseLength` where one fits) for
  `mlflow.genai.evaluate`, so per-row values and rationales land as assessments on the run;
- `make_row_scorer(scorers)` gives the live canary a `(row, output) -> float` (1.0: the row
  passes every scorer);
- the unit tests.

Why our own functions and not only MLflow's: the pinned MLflow 3.17 ships exactly two
deterministic code scorers (`RegexMatch` with one fixed pattern, `ResponseLength`); exact /
normalized match, contains, numeric tolerance, JSON validity, JSON Schema (the `jsonschema`
package) and field match are written here as custom `@scorer`s, as MLflow intends; the
`semantic` one (validation/evaluation/semantic.py) embeds with sentence-transformers.

`check_scorers(scorers, rows)` runs at validate: an unknown kind is UnknownScorerError, a
scorer whose expectation some rows lack is MissingExpectationsError naming the rows, and a
`judge` scorer (validation/evaluation/judge.py: MLflow's LLM judge on an OpenAI-compatible
endpoint) is probed: unreachable, refused or answering other than yes/no is a named error.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.errors import MissingExpectationsError, UnknownScorerError
from validation.evaluation.judge import judge, probe
from validation.evaluation.rows import EvalRow
from validation.evaluation.semantic import semantic
from validation.evaluation.spec import SCORER_KINDS, EvaluationSpec, ScorerSpec


@dataclass(frozen=True)
class Score:
    """One scorer's verdict on one row: value in [0, 1] and why."""

    value: float
    rationale: str


ScoreFn = Callable[[ScorerSpec, EvalRow, str], Score]
_PUNCT = str.maketrans("", "", string.punctuation)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def normalize(text: str) -> str:
    """Casefold, drop ASCII punctuation, collapse whitespace."""
    return " ".join(text.casefold().translate(_PUNCT).split())


def _yes(ok: bool, why: str) -> Score:
    return Score(1.0 if ok else 0.0, why)


def _expected(row: EvalRow) -> str:
    return str(row.expectations["expected_response"])


def exact(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    want = _expected(row).strip()
    return _yes(out.strip() == want, f"output {'equals' if out.strip() == want else 'is not'} "
                f"{want!r}")  # fmt: skip


def normalized(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    want, got = normalize(_expected(row)), normalize(out)
    return _yes(got == want, f"normalized output {got!r} vs {want!r}")


def contains(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    got = normalize(out)
    facts = row.expectations.get("facts") or [_expected(row)]
    found = [f for f in facts if normalize(f) in got]
    missing = [f for f in facts if f not in found]
    why = f"{len(found)}/{len(facts)} expected facts found" + (
        f"; missing {missing[:3]}" if missing else ""
    )
    return Score(len(found) / len(facts), why)


def regex(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    pattern = spec.pattern or str(row.expectations["regex"])
    try:
        hit = re.search(pattern, out) is not None
    except re.error as exc:
        return Score(0.0, f"pattern {pattern!r} does not compile: {exc}")
    return _yes(hit, f"output {'matches' if hit else 'does not match'} {pattern!r}")


def _numeric_target(spec: ScorerSpec, row: EvalRow) -> tuple[float, float]:
    num = row.expectations.get("numeric")
    if isinstance(num, Mapping):
        return float(num["value"]), float(num.get("tolerance", spec.tolerance))
    if num is not None:
        return float(num), spec.tolerance
    return float(_expected(row)), spec.tolerance


def numeric(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    want, tol = _numeric_target(spec, row)
    found = _NUMBER.search(out)
    if found is None:
        return Score(0.0, f"no number in the output; want {want} ± {tol}")
    got = float(found.group(0))
    return _yes(abs(got - want) <= tol, f"{got} vs {want} ± {tol} (|diff| {abs(got - want):.4g})")


def _parse_json(out: str) -> tuple[Any, str | None]:
    try:
        return json.loads(out), None
    except ValueError as exc:
        return None, f"not JSON: {exc}"


def json_valid(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    _, err = _parse_json(out)
    return _yes(err is None, err or "valid JSON")


def json_schema(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    import jsonschema  # type: ignore[import-untyped]

    schema = spec.json_schema or row.expectations["json_schema"]
    value, err = _parse_json(out)
    if err is not None:
        return Score(0.0, err)
    validator_cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(value))
    if error is None:
        return Score(1.0, "matches the JSON schema")
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return Score(0.0, f"schema violation at {where}: {error.message}")


def _expected_fields(row: EvalRow) -> Mapping[str, Any]:
    fields = row.expectations.get("fields")
    if isinstance(fields, Mapping):
        return fields
    if row.expectations.get("expected_response") is None:
        return {}
    parsed, _ = _parse_json(_expected(row))
    return parsed if isinstance(parsed, Mapping) else {}


def fields(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    want = dict(_expected_fields(row))
    if spec.fields is not None:
        want = {k: v for k, v in want.items() if k in spec.fields}
    got, err = _parse_json(out)
    if err is not None or not isinstance(got, dict):
        return Score(0.0, err or "output is JSON but not an object")
    right = [k for k, v in want.items() if _same(got.get(k), v)]
    wrong = [k for k in want if k not in right]
    why = f"{len(right)}/{len(want)} fields right" + (f"; wrong {wrong[:5]}" if wrong else "")
    return Score(len(right) / len(want) if want else 0.0, why)


def _same(got: Any, want: Any) -> bool:
    if isinstance(got, str) and isinstance(want, str):
        return normalize(got) == normalize(want)
    return bool(got == want)


def length(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    n = len(out.split()) if spec.unit == "words" else len(out)
    low = spec.min_length if spec.min_length is not None else 0
    high = spec.max_length if spec.max_length is not None else n
    return _yes(low <= n <= high, f"{n} {spec.unit}, allowed {low}..{spec.max_length or '∞'}")


SCORERS: dict[str, ScoreFn] = {
    "exact": exact, "normalized": normalized, "contains": contains, "regex": regex,
    "numeric": numeric, "json_valid": json_valid, "json_schema": json_schema,
    "fields": fields, "length": length, "semantic": semantic, "judge": judge,
}  # fmt: skip
assert tuple(SCORERS) == SCORER_KINDS
FRACTIONAL = frozenset({"contains", "fields", "semantic"})
"""Kinds whose value is a share (0..1), compared paired as numbers besides pass/fail."""


def needs(spec: ScorerSpec, row: EvalRow) -> str | None:
    """The expectation `spec` needs that `row` lacks, or None."""
    exp = row.expectations
    has = exp.get("expected_response") is not None
    missing = {
        "exact": None if has else "expected_response",
        "normalized": None if has else "expected_response",
        "semantic": None if has else "expected_response",
        "contains": None if has or exp.get("facts") else "facts or expected_response",
        "regex": None if spec.pattern or "regex" in exp else "regex (or the scorer's pattern)",
        "numeric": None if "numeric" in exp or _is_number(exp.get("expected_response"))
        else "numeric (or a numeric expected_response)",
        "json_schema": None if spec.json_schema or "json_schema" in exp
        else "json_schema (or the scorer's json_schema)",
        "fields": None if _expected_fields(row) else "fields (or a JSON-object expected_response)",
    }  # fmt: skip
    return missing.get(spec.kind)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def check_scorers(scorers: Sequence[ScorerSpec], rows: Sequence[EvalRow]) -> None:
    """Refuse unknown kinds and scorers whose expectations some rows lack (named errors)."""
    for spec in scorers:
        if spec.kind not in SCORERS:
            raise UnknownScorerError(
                f"unknown scorer {spec.kind!r}: use one of {', '.join(SCORER_KINDS)}"
            )
    for spec in scorers:
        lacking = [(n, r.row_id, need) for n, r in enumerate(rows, 1)
                   if (need := needs(spec, r)) is not None]  # fmt: skip
        if lacking:
            n, rid, need = lacking[0]
            raise MissingExpectationsError(
                f"scorer {spec.label!r} needs expectations.{need}, which {len(lacking)} of "
                f"{len(rows)} rows lack (first: row {n}, id {rid}); add it to those rows or "
                f"drop the scorer"
            )
    for spec in scorers:
        if spec.kind == "judge" and rows:
            probe(spec, rows[0])


def score_row(spec: ScorerSpec, row: EvalRow, output: str) -> Score:
    """`spec`'s score of `output` on `row` (the scorer must pass check_scorers first)."""
    return SCORERS[spec.kind](spec, row, output)


def passes(spec: ScorerSpec, score: Score) -> bool:
    return score.value >= spec.pass_at


def make_row_scorer(
    scorers: Sequence[ScorerSpec] | EvaluationSpec,
) -> Callable[[EvalRow, str], float]:
    """`(row, output) -> 1.0` when the output passes every scorer, else 0.0 (the live canary's
    paired quality uses the same rule as the offline gate)."""
    specs = list(scorers.scorers if isinstance(scorers, EvaluationSpec) else scorers)
    for spec in specs:
        if spec.kind not in SCORERS:
            raise UnknownScorerError(
                f"unknown scorer {spec.kind!r}: use one of {', '.join(SCORER_KINDS)}"
            )

    def row_score(row: EvalRow, output: str) -> float:
        ok = all(needs(s, row) is None and passes(s, score_row(s, row, output)) for s in specs)
        return 1.0 if ok else 0.0

    return row_score
