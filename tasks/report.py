"""The decision record: Prefect artifacts (markdown, per-step tables, links) and an MLflow run.

    publish_report(outcome)                 # artifacts: verdict first, every check, links
    log_release_record(tracking_uri, outcome, policy)  # MLflow run: metrics, reports,
                                            # pictures, tags → LoggedRun(run_id, artifacts, notes)

Artifacts of the run: `reports/step-<w>-<a>/<file>` (Locust HTML, paired rows, crosscheck,
Evidently HTML), `pictures/step-<w>-<a>.png` per step run and `pictures/weights.png`
(infra/controller/pictures.py), `report.md`. The Prefect markdown links them through the
MLflow UI (`…/#/experiments/<exp>/runs/<run>/artifacts/<path>`) when its URL is known,
else names them as text: never a file:// link, which a browser refuses from the Prefect UI.
A picture that cannot be drawn or logged is a note in the record, never a failed release.

The MLflow run is attached to the candidate: tags `canaryflow.model_name` /
`canaryflow.model_version` on the run, and `canaryflow.release_run_id` /
`canaryflow.decision` / `canaryflow.image` (the serving image's tag, named by its content
digest) on the model version when the version lives in the same store.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from infra.controller import pictures, report
from infra.controller.record import ReleaseOutcome
from infra.errors import RegistryError
from infra.tracking import experiment_id
from tasks.retry import RETRY

if TYPE_CHECKING:
    from validation.analysis.policy import CanaryPolicy

EXPERIMENT = "canaryflow-releases"


@dataclass(frozen=True)
class LoggedRun:
    """What the MLflow run of a release holds: its id, the artifact paths logged, and notes
    on what could not be drawn or logged (the record shows them)."""

    run_id: str
    artifacts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


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
    for name, (_path, art) in report.report_artifacts(outcome).items():
        if (url := report.artifact_url(outcome, art)) is not None:  # no file:// links
            create_link_artifact(link=url, link_text=name, key=report.slug(name))
    return key


@task(name="log-release-run", **RETRY)
def log_release_run_task(
    tracking_uri: str, outcome: ReleaseOutcome, policy: CanaryPolicy | None = None
) -> LoggedRun:
    """The MLflow run of the release (see log_release_record)."""
    return log_release_record(tracking_uri, outcome, policy)


def log_release_run(
    tracking_uri: str, outcome: ReleaseOutcome, artifact_root: Path | None = None
) -> str:
    """log_release_record without pictures' margins; the run id."""
    return log_release_record(tracking_uri, outcome, None, artifact_root).run_id


def log_release_record(
    tracking_uri: str,
    outcome: ReleaseOutcome,
    policy: CanaryPolicy | None = None,
    artifact_root: Path | None = None,
) -> LoggedRun:
    """Log the release as an MLflow run (metrics, reports, pictures, markdown).

    `policy` gives the pictures their pass/fail margins (None: drawn without them).

    A store that fails raises RegistryUnreachableError/RegistryError naming the release and
    its verdict: the decision itself is already in the Prefect artifacts (publish_report).
    """
    try:
        return _log_run(tracking_uri, outcome, policy, artifact_root)
    except RegistryError:
        raise
    except Exception as exc:
        from infra.registry.mlflow_registry import store_error  # imports mlflow

        action = (f"logging the MLflow run of release {outcome.release_id} (it ended "
                  f"{outcome.verdict}; the Prefect artifact release-"
                  f"{report.slug(outcome.model_name)} holds its decision record)")  # fmt: skip
        raise store_error(tracking_uri, action, exc) from exc


def _log_run(
    tracking_uri: str,
    outcome: ReleaseOutcome,
    policy: CanaryPolicy | None,
    artifact_root: Path | None,
) -> LoggedRun:
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
    _log_evaluation_input(client, run_id, outcome.tags)
    for key, value in report.metrics(outcome).items():
        client.log_metric(run_id, key, value)
    logged: list[str] = []
    for path, art in report.report_artifacts(outcome).values():
        if path.is_file():
            client.log_artifact(run_id, str(path), artifact_path=art.rsplit("/", 1)[0])
            logged.append(art)
    with tempfile.TemporaryDirectory(prefix="canaryflow-pictures-") as tmp:
        notes = _log_pictures(client, run_id, outcome, policy, Path(tmp), logged)
    recorded = outcome.model_copy(update={"artifacts": tuple(logged),
                                          "notes": (*outcome.notes, *notes)})  # fmt: skip
    client.log_text(run_id, report.markdown(recorded), "report.md")
    _tag_version(client, outcome, run_id)
    client.set_terminated(run_id)
    return LoggedRun(run_id, tuple(logged), tuple(notes))


def _log_evaluation_input(client: Any, run_id: str, tags: dict[str, str]) -> None:
    """The evaluation set the release was judged on, as the run's input dataset (the run
    page's "Datasets used"): its name, content digest and where it came from."""
    digest = tags.get("canaryflow.eval_digest")
    if not digest:
        return  # no offline evaluation in this release
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    name = tags.get("canaryflow.eval_dataset") or tags.get("canaryflow.eval_name") or "evaluation"
    registered = tags.get("canaryflow.eval_dataset_id")
    source = {"uri": tags.get("canaryflow.eval_source", "")}
    if registered:
        source["dataset_id"] = registered
    rows = tags.get("canaryflow.eval_rows")
    kind = "mlflow_evaluation_dataset" if registered else "local"
    dataset = Dataset(
        name=name,
        digest=digest.removeprefix("sha256:")[:36],
        source_type=kind,
        source=json.dumps(source),
        profile=json.dumps({"num_rows": rows}),
    )
    context = InputTag(key="mlflow.data.context", value="evaluation")
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset, tags=[context])])


def _log_pictures(
    client: Any,
    run_id: str,
    outcome: ReleaseOutcome,
    policy: CanaryPolicy | None,
    out_dir: Path,
    logged: list[str],
) -> list[str]:
    """Draw and log the pictures (appending to `logged`); notes on any that failed."""
    try:
        margins = None if policy is None else pictures.margins_from_policy(policy)
        files, notes = pictures.draw_all(outcome.steps, outcome.verdict, out_dir, margins)
    except Exception as exc:  # the pictures are evidence, not the decision
        return [f"no pictures were drawn: {type(exc).__name__}: {exc}"]
    for art, path in files.items():
        try:
            client.log_artifact(run_id, str(path), artifact_path=art.rsplit("/", 1)[0])
        except Exception as exc:
            notes.append(f"picture {art} was not logged: {type(exc).__name__}: {exc}")
        else:
            logged.append(art)
    return notes


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
