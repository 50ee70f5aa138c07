"""The drift check's MLflow run: its verdict, numbers and Evidently report, for a browser.

    logged = log_drift_run(tracking_uri, verdict)       # experiment canaryflow-drift
    links = drift_links(logged)                         # {"mlflow": run page, "report": …}
    verdict.markdown(links)                             # the Prefect record links them

The Prefect record used to link the Evidently HTML as a `file://` path on the worker, which
a browser opening the Prefect UI refuses (and which is gone on another machine). The HTML is
now an artifact of an MLflow run like a release's reports, and the record links the MLflow
UI's page of it. Without a known MLflow UI address (CANARYFLOW_MLFLOW_UI_URL) the record
names the artifact path in the run instead.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from infra.monitor.drift_watch import DriftVerdict
from infra.notify import record_links
from infra.tracking import experiment_id

EXPERIMENT = "canaryflow-drift"
REPORT_DIR = "reports"


@dataclass(frozen=True)
class DriftLogged:
    """The run that holds one drift check: its ids and the report's artifact path."""

    experiment_id: str
    run_id: str
    report: str | None = None


def log_drift_run(tracking_uri: str, verdict: DriftVerdict) -> DriftLogged:
    """One MLflow run per check: tags (model, champion, status), metrics (share, rows,
    per-column scores), the window as params, the Evidently HTML as an artifact."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = experiment_id(client, EXPERIMENT, tracking_uri)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(verdict.window.until))
    run = client.create_run(exp, tags={
        "mlflow.runName": f"drift-{verdict.model_name}-{stamp}",
        "canaryflow.model_name": verdict.model_name,
        "canaryflow.champion_version": verdict.champion or "",
        "canaryflow.drift_status": verdict.status,
        "canaryflow.drift_reason": verdict.reason[:5000],
    })  # fmt: skip
    run_id: str = run.info.run_id
    window = verdict.window
    for key, value in {"window_start": window.since, "window_end": window.until}.items():
        client.log_param(run_id, key, f"{value:.3f}")
    client.log_metric(run_id, "n_current", len(window.frame))
    client.log_metric(run_id, "n_left_out_load_tests", window.n_load_tests)
    client.log_metric(run_id, "n_left_out_failed", window.n_failed)
    report = None
    if (result := verdict.result) is not None:
        client.log_metric(run_id, "drift_share", result.drift_share)
        client.log_metric(run_id, "n_reference", result.n_reference)
        for col in result.columns:
            client.log_metric(run_id, f"drift.{col.column}.score", col.score)
            client.log_metric(run_id, f"drift.{col.column}.drifted", float(col.drifted))
        if result.html_path and Path(result.html_path).is_file():
            client.log_artifact(run_id, result.html_path, artifact_path=REPORT_DIR)
            report = f"{REPORT_DIR}/{Path(result.html_path).name}"
    client.set_terminated(run_id)
    return DriftLogged(exp, run_id, report)


def drift_links(logged: DriftLogged) -> dict[str, str]:
    """Browser URLs: the MLflow run page and its report's artifact page (when the MLflow
    UI's address is known); empty otherwise."""
    links = dict(record_links(None, logged.experiment_id, logged.run_id))
    if "mlflow" in links and logged.report is not None:
        links["report"] = f"{links['mlflow']}/artifacts/{quote(logged.report)}"
    return links
