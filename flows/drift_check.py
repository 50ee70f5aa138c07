"""The drift-check flow (scheduled): live traffic vs the release's evaluation set, by Evidently.

    drift_check(DriftCheckSpec(model_name="team-model", evaluation={"dataset": "team-eval"}))

Each check is an MLflow run (experiment canaryflow-drift, the Evidently HTML attached) that
its Prefect record links. On drift it emits `canaryflow.drift.detected` with the evidence
(share, drifted columns, window, report path); the retrain deployment's trigger listens for
it (prefect.yaml).
"""

from __future__ import annotations

from prefect import flow

from infra.monitor.drift_watch import DriftCheckSpec
from tasks import drift


@flow(name="drift-check", log_prints=True)
def drift_check(spec: DriftCheckSpec) -> str:
    """drift, no_drift or inconclusive; the artifacts say why and link the report."""
    reference = drift.champion_reference(spec)
    window = drift.read_window(spec)
    verdict = drift.judge_drift(window, reference, spec)
    links = drift.log_drift(verdict)
    drift.publish_drift(verdict, links)
    if verdict.detected:
        event_id = drift.emit_drift(verdict, links)
        print(f"emitted {event_id}: canaryflow.drift.detected")
    print(verdict.summary())
    return verdict.status
