"""Prefect tasks that tell people: the verdict (the release flow's last step), and that a
release waits for their approval (infra/notify.py)."""

from __future__ import annotations

from prefect import runtime, task
from prefect.cache_policies import NONE

from infra import notify
from infra.controller.record import ReleaseOutcome


@task(name="notify-verdict", cache_policy=NONE)
def notify_verdict(
    outcome: ReleaseOutcome, tracking_uri: str | None, mlflow_run_id: str | None
) -> tuple[dict[str, str], str]:
    """(links of the record, what became of the webhook message); never raises."""
    experiment_id = _experiment_of(tracking_uri, mlflow_run_id)
    links = notify.record_links(runtime.flow_run.id, experiment_id, mlflow_run_id)
    url = notify.webhook_url()
    if url is None:
        return links, f"notifications off: set {notify.URL_ENV} or a Secret block"
    return links, notify.post_verdict(url, outcome, links).detail


@task(name="notify-approval", cache_policy=NONE)
def notify_approval(
    release_id: str, model: str, version: str | None, summary: str, timeout_s: float
) -> str:
    """What became of the "awaits approval" message (for the record); never raises."""
    url = notify.webhook_url()
    if url is None:
        return f"approval not announced: notifications off (set {notify.URL_ENV})"
    links = notify.record_links(runtime.flow_run.id, None, None)
    body = notify.approval_message(release_id, model, version, summary, timeout_s, links)
    return f"approval request: {notify.post_message(url, body).detail}"


def _experiment_of(tracking_uri: str | None, run_id: str | None) -> str | None:
    if not tracking_uri or not run_id:
        return None
    from mlflow.tracking import MlflowClient

    try:
        return str(MlflowClient(tracking_uri).get_run(run_id).info.experiment_id)
    except Exception:  # the run was just written; a store gone since only loses the link
        return None
