"""The evaluation set in a real MLflow sqlite store: registered as a genai dataset, pinned by
digest; candidate and champion scored by mlflow.genai.evaluate with the code scorers, the
per-row values and rationales stored as assessments; the release run carries the digest."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from infra.controller.record import ReleaseOutcome
from tasks.report import log_release_run
from validation.evaluation import EvaluationSpec
from validation.evaluation.gate import evaluate_offline
from validation.evaluation.mlflow_scoring import (
    DIGEST_TAG,
    SCORES_KEY_TAG,
    LocalScoring,
    MlflowScoring,
    load_dataset,
    scores_key,
)
from validation.evaluation.source import prepare, register
from validation.quality import FakeAnswerer

pytestmark = pytest.mark.integration

ROWS = [
    {"inputs": {"prompt": f"person {i} as JSON"},
     "expectations": {"expected_response": json.dumps({"name": f"P{i}", "age": 20 + i}),
                      "json_schema": {"type": "object", "required": ["name", "age"]},
                      "fields": {"name": f"P{i}", "age": 20 + i}}}
    for i in range(30)
]  # fmt: skip
SPEC = EvaluationSpec.model_validate({
    "path": "set.jsonl", "margin": 0.3, "threshold": 0.5,
    "scorers": [{"kind": "json_schema"}, {"kind": "fields", "pass_at": 0.5},
                {"kind": "regex", "pattern": "name"}],
})  # fmt: skip


def answer(wrong_age_from: int) -> FakeAnswerer:
    def reply(prompt: str) -> str:
        i = int(prompt.split()[1])
        return json.dumps({"name": f"P{i}", "age": 20 + i + (i >= wrong_age_from)})

    return FakeAnswerer(reply)


def test_set_registered_scored_and_pinned(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    spec = SPEC.model_copy(update={"path": str(path)})

    prepared = register(prepare(spec, None, uri), spec, uri)
    again = register(prepare(spec, None, uri), spec, uri)
    assert again.tags["canaryflow.eval_dataset_id"] == prepared.tags["canaryflow.eval_dataset_id"]
    name = prepared.tags["canaryflow.eval_dataset"]
    stored = load_dataset(name, uri)  # the dataset's rows are the file's rows
    assert stored.digest == prepared.evalset.digest == prepared.tags[DIGEST_TAG]

    result = evaluate_offline(spec, prepared.evalset, answer(25), answer(30),
                              scoring=MlflowScoring(uri), tags=prepared.tags)  # fmt: skip
    local = evaluate_offline(spec, prepared.evalset, answer(25), answer(30),
                             scoring=LocalScoring())  # fmt: skip
    assert result.metrics == local.metrics  # MLflow's per-row values are the scorers' values
    assert result.passed
    assert result.pass_rate == 1.0  # fields pass_at 0.5: one wrong field of two still passes
    assert result.metrics["eval.fields.mean"] == pytest.approx((25 + 5 * 0.5) / 30)

    client = MlflowClient(uri)
    run_id = result.tags["canaryflow.eval_candidate_run"]
    run = client.get_run(run_id)
    assert run.data.tags[DIGEST_TAG] == prepared.evalset.digest
    assert run.data.tags["canaryflow.eval_role"] == "candidate"
    mlflow.set_tracking_uri(uri)
    traces = mlflow.search_traces(run_id=run_id, return_type="list")
    assert len(traces) == len(ROWS)
    by_name: dict[str, list[object]] = {}
    for trace in traces:
        for a in trace.info.assessments:
            by_name.setdefault(a.name, []).append(a)
    assert {"json_schema", "fields", "regex"} <= set(by_name)
    fields = [a for a in by_name["fields"] if a.value == 0.5]  # type: ignore[attr-defined]
    assert len(fields) == 5
    assert "1/2 fields right; wrong ['age']" in fields[0].rationale  # type: ignore[attr-defined]

    # Editing the file later makes a new dataset; the one judged stays as it was.
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:-1]), encoding="utf-8")
    edited = register(prepare(spec, None, uri), spec, uri)
    assert edited.tags[DIGEST_TAG] != prepared.tags[DIGEST_TAG]
    assert load_dataset(name, uri).digest == prepared.evalset.digest

    # The release's MLflow run pins the digest.
    outcome = ReleaseOutcome(release_id="r-1", model_name="m", version=None, verdict="rejected",
                             metrics=result.metrics, tags=result.tags)  # fmt: skip
    release_run = client.get_run(log_release_run(uri, outcome, tmp_path / "artifacts"))
    assert release_run.data.tags[DIGEST_TAG] == prepared.evalset.digest
    assert release_run.data.metrics["offline.eval.n"] == len(ROWS)


def test_the_same_outputs_on_the_same_rows_are_scored_once(tmp_path: Path) -> None:
    """The champion is scored in every release: identical outputs read the earlier run back;
    one changed output, another scorer or another set is scored afresh."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    spec = SPEC.model_copy(update={"path": str(path)})
    evalset = register(prepare(spec, None, uri), spec, uri).evalset
    outputs = answer(20).complete([r.prompt for r in evalset.rows])
    scoring = MlflowScoring(uri)

    first, first_run = scoring.score(evalset, spec.scorers, outputs, "candidate", {})
    again, again_run = scoring.score(evalset, spec.scorers, outputs, "champion", {})
    assert (again, again_run) == (first, first_run)
    local, _ = LocalScoring().score(evalset, spec.scorers, outputs, "candidate", {})
    assert {r: {k: v.value for k, v in by.items()} for r, by in again.items()} == {
        r: {k: v.value for k, v in by.items()} for r, by in local.items()
    }
    assert MlflowClient(uri).get_run(first_run).data.tags[SCORES_KEY_TAG] == scores_key(
        evalset, spec.scorers, outputs
    )

    changed = [*outputs[:-1], "not json"]
    _, changed_run = scoring.score(evalset, spec.scorers, changed, "candidate", {})
    fewer = spec.scorers[:1]
    _, fewer_run = scoring.score(evalset, fewer, outputs, "candidate", {})
    assert len({first_run, changed_run, fewer_run}) == 3
