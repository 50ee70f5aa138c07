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
    judge,
)
from infra.registry import registry_from_uri
from infra.registry.base import CHAMPION
from infra.settings import Settings
from infra.targets import make_target
from tasks.retry import RETRY


@dataclass(frozen=True)
class Reference:
    """The champion's version and its golden set as a prompt/completion frame."""

    version: str | None
    frame: pd.DataFrame


@task(name="champion-reference", cache_policy=NONE, **RETRY)
def champion_reference(spec: DriftCheckSpec) -> Reference:
    """The champion's golden set (what it was trained and validated on); empty without one."""
    from infra.controller.candidate import download
    from infra.controller.wiring import GOLDEN_FILE
    from validation.drift import frame_from_examples
    from validation.golden import read_jsonl

    settings = Settings()
    registry = registry_from_uri(settings.mlflow_uri())
    try:
        mv = registry.get_by_alias(spec.model_name, CHAMPION)
    except ModelVersionNotFoundError:
        return Reference(version=None, frame=pd.DataFrame(columns=["prompt", "completion"]))
    model_dir = download(registry, mv, settings.state / "drift")
    return Reference(mv.version, frame_from_examples(read_jsonl(model_dir / GOLDEN_FILE)))


@task(name="read-capture-window", cache_policy=NONE)
def read_window(spec: DriftCheckSpec) -> CaptureWindow:
    """Live (non load-test, 2xx) traffic the target's servers captured in the window."""
    if spec.target == "docker":
        from infra.targets import docker

        docker.register()
    target = make_target(spec.target)
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
    return judge(window, reference.frame, spec, champion=reference.version, html_path=html)


@task(name="publish-drift-report", cache_policy=NONE)
def publish_drift(verdict: DriftVerdict) -> None:
    """Markdown verdict, the per-column table and a link to the Evidently HTML."""
    key = f"drift-{verdict.model_name.lower().replace('.', '-').replace('_', '-')}"
    create_markdown_artifact(markdown=verdict.markdown(), key=key, description=verdict.summary())
    if rows := verdict.table():
        create_table_artifact(table=rows, key=f"{key}-columns", description=verdict.summary())
    if verdict.result is not None and verdict.result.html_path:
        create_link_artifact(link=Path(verdict.result.html_path).resolve().as_uri(),
                             link_text="Evidently drift report", key=f"{key}-report")  # fmt: skip


@task(name="emit-drift-event", cache_policy=NONE)
def emit_drift(verdict: DriftVerdict) -> str:
    """`canaryflow.drift.detected` on resource canaryflow.model.NAME; the event id."""
    name = verdict.model_name
    event = emit_event(event=DRIFT_EVENT, payload=verdict.event_payload(),
                       resource={"prefect.resource.id": f"canaryflow.model.{name}",
                                 "prefect.resource.name": name})  # fmt: skip
    if event is None:
        raise RuntimeError(
            "Prefect is not set up to emit events here (PREFECT_API_URL unset?): the drift "
            "was detected but nothing downstream will hear of it"
        )
    return str(event.id)
