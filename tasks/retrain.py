"""Prefect tasks of the retrain flow: thin wrappers around infra/training/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from infra.errors import SpecError
from infra.registry import registry_from_uri
from infra.registry.base import ModelVersion
from infra.settings import Settings
from infra.spec import ReleaseSpec
from infra.training import job as jobs
from infra.training.candidate import CheckedModel, checked_model, register_candidate
from infra.training.export import TrainingData, export_window
from infra.training.lineage import RetrainRun, lineage_tags
from infra.training.request import TrainerResult
from infra.training.spec import RetrainSpec, release_parameters
from infra.training.trainers import make_trainer
from tasks.retry import RETRY


@task(name="effective-spec", cache_policy=NONE)
def effective_spec(spec: RetrainSpec, drift: dict[str, Any] | None) -> RetrainSpec:
    """The spec, checked against the model the drift event names if one triggered this run:
    a deployment retrains its own model with its own trainer and evaluation set, so an event
    for another model is refused (it once retrained that model with this model's trainer)."""
    if drift:
        print(f"triggered by drift: {drift.get('reason', drift)}")
        named = drift.get("model")
        if isinstance(named, str) and named != spec.model_name:
            raise SpecError(
                f"the drift event is for model {named!r}, but this retrain deployment retrains "
                f"{spec.model_name!r} with its trainer and evaluation set; give {named!r} a "
                f"retrain deployment of its own whose trigger matches canaryflow.model.{named}"
            )
    return spec


@task(name="start-retrain", cache_policy=NONE, **RETRY)
def start_retrain(
    spec: RetrainSpec, drift: dict[str, Any] | None, event_id: str | None
) -> jobs.RetrainJob:
    """Work directory, the champion (verified local copy), the retrain's MLflow run."""
    settings = Settings()
    trigger = jobs.trigger_of(drift, event_id)
    job = jobs.RetrainJob.create(settings.state / "retrain", spec.model_name, trigger)
    job = jobs.with_champion(job, registry_from_uri(settings.mlflow_uri()))
    run = RetrainRun.open(settings.mlflow_uri(), spec.model_name, trigger)
    print(f"retrain of {spec.model_name} ({trigger.label}) from champion "
          f"{job.champion.uri or 'none'} in {job.work_dir}")  # fmt: skip
    return jobs.RetrainJob(job.model_name, job.work_dir, trigger, job.champion, run.run_id)


@task(name="export-training-data", cache_policy=NONE)
def export_training_data(spec: RetrainSpec, job: jobs.RetrainJob) -> TrainingData:
    """The window's captured user traffic, minus evaluation prompts, as train/holdout Parquet."""
    import time

    from infra.controller.wiring import GOLDEN_FILE
    from infra.targets import docker, make_target

    if spec.capture_dir is not None:
        capture_dir = Path(spec.capture_dir)
    else:
        docker.register()
        settings = dict(spec.release_spec.get("target_settings") or {})  # the model's target
        target = make_target("docker", **settings)
        capture_dir = Path(getattr(target, "capture_dir", job.work_dir / "none"))
    until = time.time()
    data = export_window(capture_dir, job.data_dir, since=until - spec.window_s,
                         until=until, evaluation_prompts=_evaluation_prompts(spec, job,
                                                                             GOLDEN_FILE),
                         min_requests=spec.min_requests, holdout_fraction=spec.holdout_fraction,
                         seed=spec.split_seed)  # fmt: skip
    print(data.summary())
    _run(job).log_data(data, job.champion)
    return data


def _evaluation_prompts(spec: RetrainSpec, job: jobs.RetrainJob, golden: str) -> list[str]:
    """The prompts of the release's evaluation set (the dataset or file its release_spec
    names), and of the champion's own golden file if it ships one: none may be trained on."""
    from validation.evaluation.source import read_set
    from validation.evaluation.spec import EvaluationSpec

    prompts: list[str] = []
    evaluation = spec.release_spec.get("evaluation")
    if isinstance(evaluation, dict):
        evalset, _ = read_set(EvaluationSpec.model_validate(evaluation), None,
                              Settings().mlflow_uri())  # fmt: skip
        prompts += [row.prompt for row in evalset.rows]
    own = Path(job.champion.model_dir) / golden if job.champion.model_dir else None
    if own is not None and own.is_file():
        prompts += jobs.evaluation_prompts([own])
    return prompts


@task(name="train-candidate", cache_policy=NONE)
def train_candidate(
    spec: RetrainSpec, job: jobs.RetrainJob, data: TrainingData
) -> tuple[TrainerResult, CheckedModel]:
    """Run the trainer on request.json; check what it returns like any candidate."""
    trainer = make_trainer(spec.trainer)
    _run(job).log_trainer(trainer.describe(), trainer.parameters())
    request = jobs.write_request(job, data, trainer)
    print(f"running {trainer.describe()} on {request}")
    result = trainer.train(request, job.output_dir)
    flavor = ReleaseSpec.model_validate({**spec.release_spec, "model": "models:/c/1"})
    model = checked_model(result, registry_from_uri(Settings().mlflow_uri()), job.work_dir,
                          flavor=flavor.serving.flavor, trainer=trainer.describe())  # fmt: skip
    print(f"{trainer.describe()} produced {model.model_dir}: {model.report.architecture}, "
          f"{model.report.num_params:,} params; metrics {result.metrics}")  # fmt: skip
    return result, model


@task(name="register-candidate", cache_policy=NONE, **RETRY)
def register(
    spec: RetrainSpec, job: jobs.RetrainJob, data: TrainingData,
    result: TrainerResult, model: CheckedModel,
) -> ModelVersion:  # fmt: skip
    """Register as `challenger` with the lineage tags; close the MLflow run."""
    trainer = make_trainer(spec.trainer)
    tags = lineage_tags(job.champion, data, job.trigger, trainer.describe(),
                        trainer.parameters(), job.run_id, result.tags)  # fmt: skip
    registry = registry_from_uri(Settings().mlflow_uri())
    mv = register_candidate(registry, spec.model_name, model, tags,
                            champion_version=job.champion.version)  # fmt: skip
    _run(job).finish(mv.uri, result.metrics, job.request_path)
    return mv


@task(name="fail-retrain", cache_policy=NONE)
def fail_retrain(job: jobs.RetrainJob, error: BaseException) -> None:
    """Record the named error (artifact, MLflow run failed); nothing was registered."""
    named = f"{type(error).__name__}: {error}"
    print(f"retrain failed, nothing registered or released: {named}")
    lines = [f"# Retrain of {job.model_name}: failed", "", f"- error: {named}",
             f"- trigger: {job.trigger.label}", f"- champion: {job.champion.uri or 'none'} "
             "(unchanged, still serving)", "- nothing was registered or released",
             f"- work directory: {job.work_dir}"]  # fmt: skip
    create_markdown_artifact(markdown="\n".join(lines) + "\n", key=_key(job.model_name),
                             description=f"retrain failed: {type(error).__name__}")  # fmt: skip
    try:
        _run(job).fail(error)
    except Exception as exc:  # the store is down too: the flow still raises the real error
        print(f"could not mark MLflow run {job.run_id} failed: {type(exc).__name__}: {exc}")


def _key(model_name: str) -> str:
    return f"retrain-{model_name.lower().replace('_', '-').replace('.', '-')}"


def _run(job: jobs.RetrainJob) -> RetrainRun:
    from mlflow.tracking import MlflowClient

    return RetrainRun(MlflowClient(Settings().mlflow_uri()), job.run_id)


@task(name="start-release", cache_policy=NONE, **RETRY)
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
    spec: RetrainSpec, job: jobs.RetrainJob, data: TrainingData, result: TrainerResult,
    version: ModelVersion, release_run: str | None,
) -> None:  # fmt: skip
    """Markdown record: trigger, data, trainer, the version and its lineage, the release."""
    lineage = "\n".join(f"  - `{k}`: {v}" for k, v in sorted(version.tags.items())
                        if k.startswith("canaryflow."))  # fmt: skip
    lines = [f"# Retrained {spec.model_name}: v{version.version}", "",
             f"- trigger: {job.trigger.label}"
             + (f" ({job.trigger.event.get('reason')})" if job.trigger.event else ""),
             f"- parent: {job.champion.uri or 'none (first training)'}",
             f"- data: {data.summary()}",
             f"- trainer: {make_trainer(spec.trainer).describe()}",
             f"- metrics: {result.metrics or 'none reported'}",
             f"- MLflow run: {job.run_id}",
             f"- release run: {release_run or 'not started (release=false)'}",
             "- lineage tags:", lineage]  # fmt: skip
    create_markdown_artifact(markdown="\n".join(lines) + "\n",
                             key=_key(spec.model_name),
                             description=lines[0].lstrip("# "))  # fmt: skip
