"""Evaluation rows: read a JSONL / CSV / Parquet file (or MLflow dataset records) into
`EvalRow`s, refuse malformed ones by row and column, and pin the set by content digest.

Row shape (the MLflow genai dataset shape; docs/CONTRACTS):

    {"inputs": {"messages": [{"role": "user", "content": "..."}]},   # or {"prompt": "..."}
     "expectations": {"expected_response": "...", "json_schema": {...}, "regex": "...",
                      "fields": {...}, "numeric": {"value": 3.5, "tolerance": 0.01},
                      "facts": ["..."]},                              # optional
     "tags": {"k": "v"}}                                              # optional

Flat shortcuts, handy in CSV: a top-level `prompt` (→ inputs), `expected_response` or
`answer` (→ expectations.expected_response), and `row_id`. In CSV and Parquet, the columns
`inputs`, `expectations` and `tags` may hold JSON text.

The digest is sha256 over the canonical JSON of the sorted rows' content (inputs,
expectations, tags; not row ids): the same content gives the same digest whatever the file
format or row order, and any edit of what is judged changes it. Row ids are
content-addressed too (unless a row gives `row_id`), so they survive reordering.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.errors import (
    EvaluationSetEmptyError,
    EvaluationSetMalformedError,
    EvaluationSetMissingError,
)

EXPECTATION_KEYS = ("expected_response", "json_schema", "regex", "fields", "numeric", "facts")
_TOP_KEYS = {"inputs", "expectations", "tags", "prompt", "expected_response", "answer", "row_id"}
SUFFIXES = (".jsonl", ".csv", ".parquet")


@dataclass(frozen=True)
class EvalRow:
    """One evaluation row: the chat messages sent, what a right answer satisfies, tags."""

    row_id: str
    messages: tuple[dict[str, str], ...]
    expectations: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user message (what the records and the drift check show)."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else self.messages[-1]["content"]

    def record(self) -> dict[str, Any]:
        """The row as an MLflow genai dataset record (inputs / expectations / tags)."""
        return {"inputs": {"messages": [dict(m) for m in self.messages]},
                "expectations": dict(self.expectations),
                "tags": {**self.tags, "row_id": self.row_id}}  # fmt: skip


@dataclass(frozen=True)
class EvaluationSet:
    """The release's rows, where they came from, and their content digest."""

    name: str
    source: str
    digest: str
    rows: tuple[EvalRow, ...]

    def by_id(self) -> dict[str, EvalRow]:
        return {r.row_id: r for r in self.rows}


def read_file(path: Path, name: str | None = None) -> EvaluationSet:
    """The rows of a JSONL, CSV or Parquet file; named errors for missing/empty/malformed."""
    if not path.is_file():
        raise EvaluationSetMissingError(
            f"evaluation set {path} does not exist: point evaluation.path at a JSONL, CSV or "
            f"Parquet file of rows (inputs, expectations, tags)"
        )
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        raw = _jsonl(path)
    elif suffix in (".csv", ".parquet"):
        raw = _table(path, suffix)
    else:
        raise EvaluationSetMalformedError(
            f"evaluation set {path} has suffix {suffix!r}: use one of {', '.join(SUFFIXES)}"
        )
    return from_records(raw, name=name or path.stem, source=str(path.resolve()))


def from_records(raw: Iterable[Mapping[str, Any]], name: str, source: str) -> EvaluationSet:
    """Rows from dict records (a file's, or an MLflow dataset's); digest over their content."""
    rows = [parse_row(rec, n) for n, rec in enumerate(raw, start=1)]
    if not rows:
        raise EvaluationSetEmptyError(
            f"evaluation set {source} holds no rows: add rows with `inputs` (messages or "
            f"prompt) and the expectations your scorers need"
        )
    rows = _unique_ids(rows)
    return EvaluationSet(name=name, source=source, digest=digest(rows), rows=tuple(rows))


def digest(rows: Iterable[EvalRow]) -> str:
    """sha256 of the sorted canonical rows (format- and order-independent)."""
    lines = sorted(_canonical(r.record()) for r in rows)
    return "sha256:" + hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def parse_row(rec: Mapping[str, Any], n: int) -> EvalRow:
    """One record → EvalRow; EvaluationSetMalformedError names row `n` and the column."""
    if not isinstance(rec, Mapping):
        raise _bad(n, "(row)", f"is a {type(rec).__name__}, not an object")
    unknown = set(rec) - _TOP_KEYS - {"dataset_record_id", "source", "created_time",
                                      "last_update_time", "created_by", "last_updated_by",
                                      "outputs"}  # fmt: skip
    if unknown:
        raise _bad(n, sorted(unknown)[0], f"is not a row column (use {sorted(_TOP_KEYS)})")
    inputs = _object(rec.get("inputs"), n, "inputs")
    if "prompt" in rec:
        inputs = {**inputs, "prompt": rec["prompt"]}
    expectations = dict(_object(rec.get("expectations"), n, "expectations"))
    for flat in ("expected_response", "answer"):
        if _present(rec.get(flat)):
            expectations.setdefault("expected_response", rec[flat])
    tags = _object(rec.get("tags"), n, "tags")
    row_id = rec.get("row_id") if _present(rec.get("row_id")) else tags.get("row_id")
    messages = _messages(inputs, n)
    _check_expectations(expectations, n)
    clean_tags = {str(k): str(v) for k, v in tags.items() if k != "row_id"}
    rid = str(row_id) if _present(row_id) else ""
    return EvalRow(row_id=rid, messages=messages, expectations=expectations, tags=clean_tags)


def _messages(inputs: Mapping[str, Any], n: int) -> tuple[dict[str, str], ...]:
    if "messages" in inputs:
        msgs = inputs["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise _bad(n, "inputs.messages", "must be a non-empty list of {role, content}")
        out = []
        for i, m in enumerate(msgs):
            if not (isinstance(m, Mapping) and isinstance(m.get("role"), str)
                    and isinstance(m.get("content"), str)):  # fmt: skip
                raise _bad(n, f"inputs.messages[{i}]", "must be {role: str, content: str}")
            out.append({"role": m["role"], "content": m["content"]})
        return tuple(out)
    prompt = inputs.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return ({"role": "user", "content": prompt},)
    raise _bad(n, "inputs", "needs `messages` (a chat) or `prompt` (a non-empty string)")


def _check_expectations(exp: Mapping[str, Any], n: int) -> None:
    if "expected_response" in exp and not isinstance(exp["expected_response"], str | int | float):
        raise _bad(n, "expectations.expected_response", "must be a string")
    if "regex" in exp and not isinstance(exp["regex"], str):
        raise _bad(n, "expectations.regex", "must be a string (a regular expression)")
    if "json_schema" in exp and not isinstance(exp["json_schema"], Mapping):
        raise _bad(n, "expectations.json_schema", "must be an object (a JSON Schema)")
    if "fields" in exp and not isinstance(exp["fields"], Mapping):
        raise _bad(n, "expectations.fields", "must be an object of field -> expected value")
    if "facts" in exp and not (isinstance(exp["facts"], list)
                               and all(isinstance(f, str) for f in exp["facts"])):  # fmt: skip
        raise _bad(n, "expectations.facts", "must be a list of strings")
    if "numeric" in exp:
        num = exp["numeric"]
        value = num.get("value") if isinstance(num, Mapping) else num
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _bad(n, "expectations.numeric", "must be a number or {value, tolerance}")


def _object(value: Any, n: int, column: str) -> dict[str, Any]:
    if not _present(value):
        return {}
    if isinstance(value, str):  # CSV / Parquet cells hold JSON text
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise _bad(n, column, f"is not valid JSON ({exc})") from exc
    if not isinstance(value, Mapping):
        raise _bad(n, column, f"must be an object, not {type(value).__name__}")
    return dict(value)


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):  # an empty CSV / Parquet cell
        return False
    return not (isinstance(value, str) and value == "")


def _unique_ids(rows: list[EvalRow]) -> list[EvalRow]:
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        base = row.row_id or hashlib.sha256(_canonical(row.record()).encode()).hexdigest()[:12]
        seen[base] = seen.get(base, 0) + 1
        rid = base if seen[base] == 1 else f"{base}-{seen[base]}"
        out.append(EvalRow(rid, row.messages, row.expectations, row.tags))
    return out


def _canonical(record: Mapping[str, Any]) -> str:
    """The content of a record without its row id (ids name rows, they are not judged)."""
    tags = {k: v for k, v in record.get("tags", {}).items() if k != "row_id"}
    rec = {**record, "tags": tags}
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise EvaluationSetMalformedError(
                    f"evaluation set {path}: line {n} is not JSON ({exc}); one JSON object a line"
                ) from exc
    return rows


def _table(path: Path, suffix: str) -> list[dict[str, Any]]:
    import pandas as pd  # type: ignore[import-untyped]

    try:
        frame = pd.read_csv(path, dtype=str) if suffix == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        return []
    except (ValueError, OSError, ImportError) as exc:
        raise EvaluationSetMalformedError(f"evaluation set {path} cannot be read: {exc}") from exc
    records: list[dict[str, Any]] = frame.to_dict(orient="records")
    return records


def _bad(n: int, column: str, what: str) -> EvaluationSetMalformedError:
    return EvaluationSetMalformedError(
        f"evaluation row {n}, column {column!r} {what}; fix that row of the evaluation set"
    )
