"""The demo's set is an evaluation set like any user's: contract rows, fixed digest, enough
rows for its margin; the demo's specs name it and pass validation."""

from __future__ import annotations

import json
from pathlib import Path

from infra.demo.evaluation import DATASET, demo_evaluation, demo_rows
from infra.spec import ReleaseSpec
from validation.evaluation import read_file
from validation.evaluation.paired import rows_needed
from validation.evaluation.scorers import check_scorers


def test_demo_rows_are_a_valid_set_with_a_stable_digest(tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in demo_rows()), encoding="utf-8")
    first, again = read_file(path), read_file(path)
    assert first.digest == again.digest
    spec = ReleaseSpec.model_validate({"model": "models:/tiny-chat/1",
                                       "evaluation": demo_evaluation()})  # fmt: skip
    assert spec.evaluation is not None
    assert spec.evaluation.dataset == DATASET
    check_scorers(spec.evaluation.scorers, first.rows)
    assert len(first.rows) >= rows_needed(spec.evaluation.margin, 0.05, 0.8, 0.05)
