"""The drift check's record in a real MLflow sqlite store: one run per check with the verdict,
the numbers and the Evidently HTML; the Prefect markdown links the MLflow UI's pages of
them, never a worker's file:// path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mlflow import MlflowClient

from infra.monitor.drift_record import EXPERIMENT, drift_links, log_drift_run
from infra.monitor.drift_watch import DriftCheckSpec, capture_window, judge
from infra.notify import MLFLOW_UI_ENV
from validation.drift import frame_from_examples
from validation.evaluation.spec import EvaluationSpec
from validation.golden import TaskSpec, sample

pytestmark = pytest.mark.integration

NOW = 1_800_000_000.0
SPEC = DriftCheckSpec(model_name="team-model", evaluation=EvaluationSpec(dataset="team-eval"))


def capture(folder: Path, task: TaskSpec, n: int) -> Path:
    folder.mkdir(parents=True)
    with (folder / "capture-stable-h-1.jsonl").open("w") as f:
        for i, ex in enumerate(sample(task, n, seed=2)):
            f.write(json.dumps({
                "ts": datetime.fromtimestamp(NOW - 1, UTC).isoformat(), "request_id": f"u-{i}",
                "variant": "stable", "model_version": "3", "status": 200, "latency_ms": 5.0,
                "ttft_ms": None, "prompt": ex.prompt, "completion": ex.answer, "truncated": False,
            }) + "\n")  # fmt: skip
    return folder


def test_a_drift_check_is_an_mlflow_run_the_record_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    reference = frame_from_examples(sample(TaskSpec(), 400, seed=1))
    drifted = TaskSpec(min_operand=100, max_operand=999)
    window = capture_window(capture(tmp_path / "cap", drifted, 300), 60, now=NOW)
    verdict = judge(window, reference, SPEC, champion="3", html_path=tmp_path / "drift.html")
    assert verdict.status == "drift"

    logged = log_drift_run(uri, verdict)

    client = MlflowClient(uri)
    run = client.get_run(logged.run_id)
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.tags["canaryflow.drift_status"] == "drift"
    assert run.data.tags["canaryflow.model_name"] == "team-model"
    assert run.data.tags["canaryflow.champion_version"] == "3"
    assert run.data.metrics["drift_share"] == pytest.approx(verdict.result.drift_share)  # type: ignore[union-attr]
    assert run.data.metrics["n_current"] == 300
    assert run.data.metrics["drift.prompt_length.drifted"] == 1.0
    assert logged.report == "reports/drift.html"
    assert [a.path for a in client.list_artifacts(logged.run_id, "reports")] == [logged.report]

    monkeypatch.setenv(MLFLOW_UI_ENV, "http://127.0.0.1:5000/")
    links = drift_links(logged)
    page = f"http://127.0.0.1:5000/#/experiments/{logged.experiment_id}/runs/{logged.run_id}"
    assert links == {"mlflow": page, "report": f"{page}/artifacts/reports/drift.html"}
    markdown = verdict.markdown(links)
    assert f"[open in the MLflow UI]({page}/artifacts/reports/drift.html)" in markdown
    assert "file://" not in markdown

    monkeypatch.delenv(MLFLOW_UI_ENV)
    assert drift_links(logged) == {}
    bare = verdict.markdown(drift_links(logged))
    assert "file://" not in bare
    assert "`drift.html` (no MLflow UI address known" in bare


def test_an_inconclusive_check_is_logged_without_a_report(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    window = capture_window(capture(tmp_path / "cap", TaskSpec(), 20), 60, now=NOW)
    verdict = judge(window, frame_from_examples(sample(TaskSpec(), 50, 1)), SPEC)
    assert verdict.status == "inconclusive"
    logged = log_drift_run(uri, verdict)
    run = MlflowClient(uri).get_run(logged.run_id)
    assert run.data.tags["canaryflow.drift_status"] == "inconclusive"
    assert "20 live requests in the window, 100 needed" in run.data.tags["canaryflow.drift_reason"]
    assert logged.report is None
    assert "drift_share" not in run.data.metrics
    assert "MLflow run: not logged (OSError: disk)" in verdict.markdown(
        {"mlflow_error": "OSError: disk"}
    )
