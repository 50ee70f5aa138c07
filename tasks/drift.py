"""Prefect tasks of the drift-check flow: thin wrappers around infra/monitor/drift_watch.py."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.events import emit_event

from infra.errors import ModelVersionNotFoundError, SpecError
from infra.monitor.drift_watch import (
    DRIFT_EVENT,
    CaptureWindow,
    DriftCheckSpec,
    DriftVerdict,
    capture_window,
    evaluation_reference,
    judge,
)
from infra.registry import registry_from_uri
from infra.registry.base import CHAMPION
from infra.settings import Settings
from infra.targets import make_target
from tasks.retry import RETRY


@dataclass(frozen=True)
class Reference:
    """The champion's version, the evaluation set as a prompt/completion frame, and whether
    its outputs are compared (every row has an expected response, or the spec says so)."""

    version: str | None
    frame: pd.DataFrame
    outputs: bool = True


@task(name="champion-reference", cache_policy=NONE, **RETRY)
def champion_reference(spec: DriftCheckSpec) -> Reference:
    """The spec's evaluation set (the one the releases are judged on); empty frame when the
    model has no champion yet (nothing serves, nothing to compare)."""
    from infra.controller.candidate import download
    from validation.evaluation.source import read_set

    settings = Settings()
    registry = registry_from_uri(settings.mlflow_uri())
    try:
        mv = registry.get_by_alias(spec.model_name, CHAMPION)
    except ModelVersionNotFoundError:
        return Reference(version=None, frame=pd.DataFrame(columns=["prompt", "completion"]))
    evaluation = spec.evaluation
    own = (
        evaluation.allow_candidate_golden and evaluation.path is None and evaluation.dataset is None
    )
    model_dir = download(registry, mv, settings.state / "drift") if own else None
    evalset, _ = read_set(evaluation, model_dir, settings.mlflow_uri())
    frame, answered = evaluation_reference(evalset.rows)
    if spec.compare_outputs and not answered:
        raise SpecError(
            f"compare_outputs is true but evaluation set {evalset.name!r} has rows without an "
            "expected_response: add one to every row, or set compare_outputs to null"
        )
    outputs = answered if spec.compare_outputs is None else spec.compare_outputs
    print(f"reference: evaluation set {evalset.name!r} ({len(evalset.rows)} rows, "
          f"{evalset.digest}), outputs {'compared' if outputs else 'not compared'}")  # fmt: skip
    return Reference(mv.version, frame, outputs)


@task(name="read-capture-window", cache_policy=NONE)
def read_window(spec: DriftCheckSpec) -> CaptureWindow:
    """Live (non load-test, 2xx) traffic the target's servers captured in the window."""
    if spec.target == "docker":
        from infra.targets import docker

        docker.register()
    target = make_target(spec.target, **spec.target_settings)
    capture_dir = getattr(target, "capture_dir", None)
    if not isinstance(capture_dir, Path):
        raise SpecError(f"target {spec.target!r} keeps no capture files on this machine")
    return capture_window(capture_dir, spec.window_s, since=spec.since,
                          include_load_tests=spec.include_load_tests)  # fmt: skip


@task(name="judge-drift", cache_policy=NONE)
def judge_drift(window: CaptureWindow, reference: Reference, spec: DriftCheckSpec) -> DriftVerdict:
    """Evidently's drift preset over window vs reference (HTML kept under the state dir)."""
    if reference.version is None:
        reason = f"{spec.model_name} has no champion: nothing serves to compare against"
        return DriftVerdict("inconclusive", spec.model_name, None, window, None, reason)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(window.until))
    html = Settings().state / "drift" / f"{spec.model_name}-{stamp}.html"
    return judge(
        window,
        reference.frame,
        spec,
        champion=reference.version,
        html_path=html,
        outputs=reference.outputs,
    )


@task(name="log-drift-run", cache_policy=NONE)
def log_drift(verdict: DriftVerdict) -> dict[str, str]:
    """The check's MLflow run (experiment canaryflow-drift, the Evidently HTML attached);
    the browser links of the record."""
    from infra.monitor.drift_record import drift_links, log_drift_run

    try:
        logged = log_drift_run(Settings().mlflow_uri(), verdict)
    except Exception as exc:  # the verdict still gets its Prefect record, saying so
        print(f"the drift check's MLflow run could not be logged: {type(exc).__name__}: {exc}")
        return {"mlflow_error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    print(f"MLflow run {logged.run_id} (experiment {logged.experiment_id})")
    return drift_links(logged)


@task(name="publish-drift-report", cache_policy=NONE)
def publish_drift(verdict: DriftVerdict, links: dict[str, str] | None = None) -> None:
    """Markdown verdict, the per-column table and a link to the Evidently report's page."""
    key = f"drift-{verdict.model_name.lower().replace('.', '-').replace('_', '-')}"
    create_markdown_artifact(markdown=verdict.markdown(links), key=key,
                             description=verdict.summary())  # fmt: skip
    if rows := verdict.table():
        create_table_artifact(table=rows, key=f"{key}-columns", description=verdict.summary())
    if links and "report" in links:  # a page the browser opens, never a file:// path
        create_link_artifact(link=links["report"], link_text="Evidently drift report",
                             key=f"{key}-report")  # fmt: skip


@task(name="emit-drift-event", cache_policy=NONE)
def emit_drift(verdict: DriftVerdict, links: dict[str, str] | None = None) -> str:
    """`canaryflow.drift.detected` on resource canaryflow.model.NAME; the event id."""
    name = verdict.model_name
    payload = {**verdict.event_payload(), "links": dict(links or {})}
    event = emit_event(event=DRIFT_EVENT, payload=payload,
                       resource={"prefect.resource.id": f"canaryflow.model.{name}",
                                 "prefect.resource.name": name})  # fmt: skip
    if event is None:
        raise RuntimeError(
            "Prefect is not set up to emit events here (PREFECT_API_URL unset?): the drift "
            "was detected but nothing downstream will hear of it"
        )
    return str(event.id)
