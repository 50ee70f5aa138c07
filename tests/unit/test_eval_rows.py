"""Reading evaluation sets: three formats, one digest; malformed rows named by row and column."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from infra.errors import (
    EvaluationSetEmptyError,
    EvaluationSetMalformedError,
    EvaluationSetMissingError,
)
from validation.evaluation import read_file

ROWS = [
    {"inputs": {"messages": [{"role": "system", "content": "terse"},
                             {"role": "user", "content": "Capital of France?"}]},
     "expectations": {"expected_response": "Paris"}, "tags": {"topic": "geo"}},
    {"inputs": {"prompt": "2+2"}, "expectations": {"numeric": {"value": 4, "tolerance": 0}}},
]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_csv_parquet_read_the_same_rows_and_digest(tmp_path: Path) -> None:
    js = read_file(write_jsonl(tmp_path / "set.jsonl", ROWS))
    frame = pd.DataFrame([{k: json.dumps(v) for k, v in r.items()} for r in ROWS])
    frame.to_csv(tmp_path / "set.csv", index=False)
    frame.to_parquet(tmp_path / "set.parquet")
    for other in (read_file(tmp_path / "set.csv"), read_file(tmp_path / "set.parquet")):
        assert other.digest == js.digest
        assert [r.row_id for r in other.rows] == [r.row_id for r in js.rows]
    first = js.rows[0]
    assert first.prompt == "Capital of France?"
    assert first.tags == {"topic": "geo"}
    assert js.rows[1].messages == ({"role": "user", "content": "2+2"},)
    assert js.digest.startswith("sha256:")
    assert js.name == "set"


def test_digest_ignores_order_and_changes_with_content(tmp_path: Path) -> None:
    a = read_file(write_jsonl(tmp_path / "a.jsonl", ROWS))
    b = read_file(write_jsonl(tmp_path / "b.jsonl", ROWS[::-1]))
    edited = [ROWS[0], {**ROWS[1], "expectations": {"expected_response": "5"}}]
    c = read_file(write_jsonl(tmp_path / "c.jsonl", edited))
    assert a.digest == b.digest != c.digest


def test_flat_csv_shortcuts(tmp_path: Path) -> None:
    (tmp_path / "flat.csv").write_text("prompt,expected_response\nhi,hello\n", encoding="utf-8")
    rows = read_file(tmp_path / "flat.csv").rows
    assert rows[0].prompt == "hi"
    assert rows[0].expectations == {"expected_response": "hello"}


def test_missing_and_empty_sets_are_named(tmp_path: Path) -> None:
    with pytest.raises(EvaluationSetMissingError, match="does not exist"):
        read_file(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(EvaluationSetEmptyError, match="holds no rows"):
        read_file(tmp_path / "empty.jsonl")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(EvaluationSetEmptyError):
        read_file(tmp_path / "empty.csv")


@pytest.mark.parametrize(("bad", "where"), [
    ({"inputs": {}}, "row 2, column 'inputs'"),
    ({"inputs": {"messages": [{"role": "user"}]}}, "row 2, column 'inputs.messages[0]'"),
    ({"inputs": {"prompt": "x"}, "expectations": {"json_schema": "object"}},
     "row 2, column 'expectations.json_schema'"),
    ({"inputs": {"prompt": "x"}, "expectations": {"numeric": "many"}},
     "row 2, column 'expectations.numeric'"),
    ({"inputs": {"prompt": "x"}, "expected": "y"}, "row 2, column 'expected'"),
    ({"inputs": "not json", "expectations": {}}, "row 2, column 'inputs'"),
])  # fmt: skip
def test_malformed_row_names_row_and_column(
    tmp_path: Path, bad: dict[str, object], where: str
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], bad])
    with pytest.raises(EvaluationSetMalformedError, match=where.replace("[", r"\[")):
        read_file(path)


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text(json.dumps(ROWS[0]) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(EvaluationSetMalformedError, match="line 2 is not JSON"):
        read_file(tmp_path / "bad.jsonl")
