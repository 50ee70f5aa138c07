"""The retrain flow (scheduled, or triggered by `canaryflow.drift.detected`).

    retrain(RetrainSpec(model_name="support-bot", trainer={"kind": "command",
            "command": ["{python}", "-m", "myteam.train", "{request}"]}))      # nightly
    retrain(spec, drift={"model": "support-bot", "drift_share": 0.75}, event_id="…")  # event

Exports the window's captured user traffic (train/holdout Parquet, evaluation prompts left
out), runs the spec's trainer on a request file (infra/training/request.py), checks and
registers what it returns as `challenger` with lineage tags, and ends by starting a run of
the release deployment for that version. Any failure before the registration (too little
data, a trainer that cannot start, fails, times out or returns a broken model) is a named
TrainingError: nothing is registered or released, the champion keeps serving.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from infra.training.spec import RetrainSpec
from tasks import retrain as steps


@flow(name="retrain", log_prints=True)
def retrain(
    spec: RetrainSpec, drift: dict[str, Any] | None = None, event_id: str | None = None
) -> str:
    """The new version; `drift` is the triggering event's evidence (its `model` names the
    model to retrain), `event_id` that event's id, both recorded in the lineage."""
    spec = steps.effective_spec(spec, drift)
    job = steps.start_retrain(spec, drift, event_id)
    try:
        data = steps.export_training_data(spec, job)
        result, model = steps.train_candidate(spec, job, data)
        version = steps.register(spec, job, data, result, model)
    except Exception as exc:
        steps.fail_retrain(job, exc)
        raise
    release_run = None
    if spec.release:
        release_run = steps.start_release(spec, version.version)
        print(f"started {spec.release_deployment} run {release_run} for v{version.version}")
    steps.publish_retrain(spec, job, data, result, version, release_run)
    return version.version
