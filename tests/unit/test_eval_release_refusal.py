"""A release whose evaluation set is bad is rejected with the named error before anything
is registered or deployed, and its record says which rows (digest) a verdict was judged on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.release import run_release
from infra.controller.wiring import OfflineCheck
from infra.registry import FakeRegistry
from infra.spec import ReleaseSpec
from tests.unit.test_release_flow import NAME, harness, make_ports, model_dir

__all__ = ["harness"]  # the module-wide Prefect test harness of the release-flow tests


@pytest.mark.parametrize(("evaluation", "error"), [
    (None, "EvaluationSetMissingError: the release names no evaluation set"),
    ({"path": "/nonexistent/eval.jsonl"}, "EvaluationSetMissingError"),
    ({"path": "EMPTY"}, "EvaluationSetEmptyError"),
    ({"path": "SET", "scorers": [{"kind": "rouge"}]}, "UnknownScorerError"),
    ({"path": "SET", "scorers": [{"kind": "json_schema"}]}, "MissingExpectationsError"),
    ({"path": "SET", "margin": 0.01}, "TooFewRowsError"),
])  # fmt: skip
def test_bad_evaluation_set_rejects_before_any_effect(
    tmp_path: Path, evaluation: dict[str, object] | None, error: str
) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    rows = [{"inputs": {"prompt": f"q{i}"}, "expectations": {"expected_response": "a"}}
            for i in range(300)]  # fmt: skip
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if evaluation is not None and evaluation["path"] in ("EMPTY", "SET"):
        name = "empty.jsonl" if evaluation["path"] == "EMPTY" else "set.jsonl"
        evaluation = {**evaluation, "path": str(tmp_path / name)}
    model = str(model_dir(tmp_path, "v1"))
    spec = ReleaseSpec.model_validate(
        {"model": model, "registered_name": NAME, "evaluation": evaluation}
    )
    ports = make_ports(tmp_path)
    ports.check = OfflineCheck(spec)
    outcome = run_release(spec, ports)
    assert outcome.verdict == "rejected"
    assert outcome.reasons[0].startswith(error), outcome.reasons
    assert isinstance(ports.registry, FakeRegistry)
    assert not [c for c in ports.registry.calls if c[0] == "register"]
    assert ports.target.status().stable is None
