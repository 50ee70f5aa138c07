"""The decision record: Prefect artifacts (markdown, per-step tables, links) and an MLflow run.

    publish_report(outcome)                 # artifacts: verdict first, every check, links
    log_release_run(tracking_uri, outcome)  # MLflow run: metrics, HTML reports, tags

The MLflow run is attached to the candidate: tags `canaryflow.model_name` /
`canaryflow.model_version` on the run, and `canaryflow.release_run_id` /
`canaryflow.decision` / `canaryflow.image` (the serving image's tag, named by its content
digest) on the model version when the version lives in the same store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from infra.controller import report
from infra.controller.record import ReleaseOutcome
from infra.errors import RegistryError
from infra.tracking import experiment_id

EXPERIMENT = "canaryflow-releases"


@task(name="publish-report")
def publish_report(outcome: ReleaseOutcome) -> str:
    """Markdown decision record, a table per step run, a link per HTML report; the key."""
    key = f"release-{report.slug(outcome.model_name)}"
    create_markdown_artifact(markdown=report.markdown(outcome), key=key,
                             description=outcome.summary())  # fmt: skip
    for step in outcome.steps:
        create_table_artifact(
            table=report.step_rows(step),
            key=f"canary-step-{step.weight}-run-{step.attempt}",
            description=f"{step.weight}%: {step.action} — {step.reason}",
        )
    for name, path in outcome.reports.items():
        create_link_artifact(link=path.resolve().as_uri(), link_text=name,
                             key=report.slug(name))  # fmt: skip
    return key


@task(name="log-release-run", retries=2, retry_delay_seconds=5)
def log_release_run_task(tracking_uri: str, outcome: ReleaseOutcome) -> str:
    """The MLflow run of the release (see log_release_run)."""
    return log_release_run(tracking_uri, outcome)


def log_release_run(
    tracking_uri: str, outcome: ReleaseOutcome, artifact_root: Path | None = None
) -> str:
    """Log the release as an MLflow run (metrics, HTML reports, markdown); the run id.

    A store that fails raises RegistryUnreachableError/RegistryError naming the release and
    its verdict: the decision itself is already in the Prefect artifacts (publish_report).
    """
    try:
        return _log_run(tracking_uri, outcome, artifact_root)
    except RegistryError:
        raise
    except Exception as exc:
        from infra.registry.mlflow_registry import store_error  # imports mlflow

        action = (f"logging the MLflow run of release {outcome.release_id} (it ended "
                  f"{outcome.verdict}; the Prefect artifact release-"
                  f"{report.slug(outcome.model_name)} holds its decision record)")  # fmt: skip
        raise store_error(tracking_uri, action, exc) from exc


def _log_run(tracking_uri: str, outcome: ReleaseOutcome, artifact_root: Path | None) -> str:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    run = client.create_run(experiment_id(client, EXPERIMENT, tracking_uri, artifact_root), tags={
        "mlflow.runName": outcome.release_id,
        "canaryflow.release_id": outcome.release_id,
        "canaryflow.verdict": outcome.verdict,
        "canaryflow.model_name": outcome.model_name,
        "canaryflow.model_version": outcome.version or "",
        **{f"canaryflow.git_{k}": v for k, v in outcome.source.items()},
        **outcome.tags,
    })  # fmt: skip
    run_id: str = run.info.run_id
    for key, value in report.metrics(outcome).items():
        client.log_metric(run_id, key, value)
    client.log_text(run_id, report.markdown(outcome), "report.md")
    for name, path in outcome.reports.items():
        if path.is_file():
            client.log_artifact(run_id, str(path), artifact_path=f"reports/{name}")
    _tag_version(client, outcome, run_id)
    client.set_terminated(run_id)
    return run_id


def _tag_version(client: Any, outcome: ReleaseOutcome, run_id: str) -> None:
    """Link the model version to this run, when the version is in this store."""
    from mlflow.exceptions import MlflowException

    if outcome.version is None:
        return
    tags = {"canaryflow.release_run_id": run_id, "canaryflow.decision": outcome.verdict}
    if outcome.image:  # the tag is the image's content digest (infra/image): model → image
        tags["canaryflow.image"] = outcome.image
    try:
        for key, value in tags.items():
            client.set_model_version_tag(outcome.model_name, outcome.version, key, value)
    except MlflowException:
        pass  # the registry is elsewhere (or a fake): the run's own tags still link them
