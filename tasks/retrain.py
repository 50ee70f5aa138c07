"""Prefect tasks of the retrain flow: thin wrappers around infra/demo_model/retrain.py."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from infra.demo_model.release_candidate import CandidateReport, train_and_register
from infra.demo_model.retrain import (
    RetrainSpec,
    champion_config,
    observed_task,
    plan,
    release_parameters,
)
from infra.demo_model.train import TrainConfig
from infra.errors import ModelVersionNotFoundError
from infra.monitor.drift_watch import capture_window
from infra.registry import registry_from_uri
from infra.registry.base import CHALLENGER, CHAMPION
from infra.settings import Settings


@task(name="effective-spec", cache_policy=NONE)
def effective_spec(spec: RetrainSpec | None, drift: dict[str, Any] | None) -> RetrainSpec:
    """The spec (or defaults) for the model the drift event names, if one triggered this."""
    spec = spec or RetrainSpec()
    if drift:
        print(f"triggered by drift: {drift.get('reason', drift)}")
        if isinstance(drift.get("model"), str):
            spec = RetrainSpec.model_validate({**spec.model_dump(), "model_name": drift["model"]})
    return spec


@task(name="plan-retrain", cache_policy=NONE, retries=2, retry_delay_seconds=5)
def plan_retrain(spec: RetrainSpec) -> tuple[TrainConfig, str]:
    """The new training config (champion's, widened to recent traffic) and why."""
    from infra.targets import docker, make_target

    registry = registry_from_uri(Settings().mlflow_uri())
    try:
        champion = registry.get_by_alias(spec.model_name, CHAMPION)
        base, origin = champion_config(champion.tags), f"champion v{champion.version}"
    except ModelVersionNotFoundError:
        base, origin = champion_config(None), "the default config (no champion yet)"
    docker.register()
    capture_dir = getattr(make_target("docker"), "capture_dir", None)
    seen, n = None, 0
    if capture_dir is not None:
        window = capture_window(capture_dir, spec.window_s)
        seen, n = observed_task(window.frame["prompt"])
    config = plan(base, seen, n, spec)
    why = (f"from {origin}: task {base.task.model_dump()} → {config.task.model_dump()} "
           f"({n} recent live prompts parsed), {base.steps} → {config.steps} steps")  # fmt: skip
    return config, why


@task(name="train-and-register", cache_policy=NONE, timeout_seconds=3600)
def train_candidate(config: TrainConfig, name: str) -> CandidateReport:
    """Train, check the artifact, register as `challenger` (idempotent on content)."""
    return train_and_register(config, register=True, name=name, alias=CHALLENGER)


@task(name="start-release", cache_policy=NONE, retries=2, retry_delay_seconds=5)
def start_release(spec: RetrainSpec, version: str) -> str:
    """Create a run of the release deployment for `version` (not waiting); its flow run id."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    params = release_parameters(spec, spec.model_name, version)
    run = run_deployment(spec.release_deployment, parameters=params, timeout=0,
                         as_subflow=False, tags=["canaryflow-retrain"])  # fmt: skip
    if not isinstance(run, FlowRun):
        raise TypeError(f"run_deployment returned {type(run).__name__}, not a FlowRun")
    return str(run.id)


@task(name="publish-retrain-report", cache_policy=NONE)
def publish_retrain(
    spec: RetrainSpec,
    why: str,
    report: CandidateReport,
    drift: dict[str, Any] | None,
    release_run: str | None,
) -> None:
    """Markdown record: what triggered it, the data, the score, the version, the release."""
    v = report.version
    lines = [f"# Retrained {spec.model_name}: v{v.version if v else '?'}", "",
             f"- trigger: {'drift event: ' + str(drift.get('reason')) if drift else 'schedule'}",
             f"- plan: {why}",
             f"- exact match on held-out golden set: {report.result.exact_match:.1%} "
             f"({report.result.n_eval} problems), trained in {report.result.seconds:.0f} s",
             f"- release run: {release_run or 'not started (release=false)'}"]  # fmt: skip
    create_markdown_artifact(markdown="\n".join(lines) + "\n",
                             key=f"retrain-{spec.model_name.lower().replace('_', '-')}",
                             description=lines[0].lstrip("# "))  # fmt: skip
