"""The retrain flow (scheduled, or triggered by `canaryflow.drift.detected`).

    retrain(RetrainSpec(model_name="tiny-chat"))                 # nightly
    retrain(drift={"model": "tiny-chat", "drift_share": 0.75})   # from the drift event

Trains a candidate on the champion's data widened to recent live traffic, registers it as
`challenger`, and ends by starting a run of the release deployment for that version.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from infra.demo_model.retrain import RetrainSpec
from tasks import retrain as steps


@flow(name="retrain", log_prints=True)
def retrain(spec: RetrainSpec | None = None, drift: dict[str, Any] | None = None) -> str:
    """The new version; `drift` is the triggering event's evidence, recorded with it (its
    `model` names the model to retrain)."""
    spec = steps.effective_spec(spec, drift)
    config, why = steps.plan_retrain(spec)
    print(why)
    report = steps.train_candidate(config, spec.model_name)
    print(report)
    if report.version is None:
        raise RuntimeError("the candidate was trained but not registered")
    version = report.version.version
    release_run = None
    if spec.release:
        release_run = steps.start_release(spec, version)
        print(f"started {spec.release_deployment} run {release_run} for v{version}")
    steps.publish_retrain(spec, why, report, drift, release_run)
    return version
