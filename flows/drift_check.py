"""The drift-check flow (scheduled): live traffic vs the champion's reference, by Evidently.

    drift_check(DriftCheckSpec(model_name="tiny-chat", window_s=3600))   # -> "drift" | ...

On drift it emits `canaryflow.drift.detected` with the evidence (share, drifted columns,
window, report path); the retrain deployment's trigger listens for it (prefect.yaml).
"""

from __future__ import annotations

from prefect import flow

from infra.monitor.drift_watch import DriftCheckSpec
from tasks import drift


@flow(name="drift-check", log_prints=True)
def drift_check(spec: DriftCheckSpec | None = None) -> str:
    """drift, no_drift or inconclusive; the artifacts say why and link the report."""
    spec = spec or DriftCheckSpec()
    reference = drift.champion_reference(spec)
    window = drift.read_window(spec)
    verdict = drift.judge_drift(window, reference, spec)
    drift.publish_drift(verdict)
    if verdict.detected:
        event_id = drift.emit_drift(verdict)
        print(f"emitted {event_id}: canaryflow.drift.detected")
    print(verdict.summary())
    return verdict.status
