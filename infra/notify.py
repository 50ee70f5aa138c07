"""Release notifications, Slack/Teams-compatible: one webhook message per release verdict,
and one when a release stops to wait for a person's approval.

    url = webhook_url()                        # env or Prefect Secret block; None: off
    links = record_links(flow_run_id, experiment_id, mlflow_run_id)
    result = post_verdict(url, outcome, links) # Delivery(ok, detail); never raises
    post_message(url, approval_message(release_id, model, version, summary, 3600, links))

Where the URL comes from (never a committed file, an image or a log line):
`CANARYFLOW_NOTIFY_WEBHOOK_URL` in the worker's environment, else the Prefect Secret block
named by `CANARYFLOW_NOTIFY_SECRET_BLOCK` (default `canaryflow-webhook-url`) when it exists:
    prefect block create secret   # or: Secret(value="https://hooks…").save("canaryflow-webhook-url")
Neither: notifications are off, and the record says so.

The message is `{"text", "blocks", "canaryflow"}`: Slack's incoming webhooks render `text` and
`blocks` (mrkdwn); Teams' and most chat webhooks render `text`; `canaryflow` carries the
event (`verdict` or `approval_requested`), verdict, reasons and links as fields for any
other consumer. A receiver that times out or
answers non-2xx does not stop or change the release: the failure is logged (without the URL,
which is a credential) and written into the decision record.

Why not a Prefect automation with a notification block: an automation sees the flow run's
state, not the verdict, its reasons and the evidence links, and a failed notification would
be invisible in the release's record.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from infra.controller.record import ReleaseOutcome

log = logging.getLogger("canaryflow.notify")

URL_ENV = "CANARYFLOW_NOTIFY_WEBHOOK_URL"
BLOCK_ENV = "CANARYFLOW_NOTIFY_SECRET_BLOCK"
DEFAULT_BLOCK = "canaryflow-webhook-url"
MLFLOW_UI_ENV = "CANARYFLOW_MLFLOW_UI_URL"
TIMEOUT_ENV = "CANARYFLOW_NOTIFY_TIMEOUT_S"
_ICON = {"promoted": "✅", "rolled_back": "↩️", "rejected": "⛔", "aborted": "⏹️", "error": "❗"}


@dataclass(frozen=True)
class Delivery:
    """What became of one notification: `detail` is safe to show (no URL)."""

    ok: bool
    detail: str


def webhook_url() -> str | None:
    """The webhook URL from the environment or the Secret block; None when not configured."""
    if url := os.environ.get(URL_ENV, "").strip():
        return url
    name = os.environ.get(BLOCK_ENV, DEFAULT_BLOCK)
    try:
        from prefect.blocks.system import Secret

        block: Any = Secret.load(name)  # sync here (no event loop): a Secret, not a coroutine
        value = block.get()
    except Exception:  # no such block, or no Prefect API here: notifications are off
        return None
    return str(value).strip() or None


def record_links(
    flow_run_id: str | None, experiment_id: str | None, mlflow_run_id: str | None
) -> dict[str, str]:
    """Browser URLs of the release's record: its Prefect flow run (artifacts tab) and its
    MLflow run, where the UIs' addresses are known."""
    links: dict[str, str] = {}
    ui = _prefect_ui()
    if ui and flow_run_id:
        links["prefect"] = f"{ui}/runs/flow-run/{flow_run_id}?tab=Artifacts"
    mlflow_ui = os.environ.get(MLFLOW_UI_ENV, "").rstrip("/")
    if mlflow_ui and experiment_id and mlflow_run_id:
        links["mlflow"] = f"{mlflow_ui}/#/experiments/{experiment_id}/runs/{mlflow_run_id}"
    return links


def message(outcome: ReleaseOutcome, links: Mapping[str, str]) -> dict[str, Any]:
    """The webhook body for `outcome` (see the module doc)."""
    head = (f"{_ICON.get(outcome.verdict, '')} canaryflow release {outcome.verdict}: "
            f"{outcome.model_name} v{outcome.version or '?'}").strip()  # fmt: skip
    reasons = list(outcome.reasons[:5])
    lines = [f"*{head}*", *(f"• {r}" for r in reasons)]
    lines += [f"<{url}|{name} record>" for name, url in links.items()]
    return {
        "text": "\n".join([head, *reasons, *links.values()]),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
        "canaryflow": {
            "event": "verdict",
            "release_id": outcome.release_id,
            "model": outcome.model_name,
            "version": outcome.version,
            "verdict": outcome.verdict,
            "reasons": list(outcome.reasons),
            "links": dict(links),
        },
    }


def approval_message(
    release_id: str,
    model: str,
    version: str | None,
    summary: str,
    timeout_s: float,
    links: Mapping[str, str],
) -> dict[str, Any]:
    """The webhook body of a release waiting for a person: what to decide, by when, where."""
    head = f"⏸️ canaryflow release awaits approval: {model} v{version or '?'}"
    ask = f"Answer within {timeout_s:.0f} s, or it rolls back."
    lines = [f"*{head}*", summary, ask, *(f"<{url}|{name}>" for name, url in links.items())]
    return {
        "text": "\n".join([head, summary, ask, *links.values()]),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
        "canaryflow": {
            "event": "approval_requested",
            "release_id": release_id,
            "model": model,
            "version": version,
            "summary": summary,
            "timeout_s": timeout_s,
            "links": dict(links),
        },
    }


def post_verdict(
    url: str,
    outcome: ReleaseOutcome,
    links: Mapping[str, str],
    *,
    timeout_s: float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Delivery:
    """POST the verdict's message (see post_message)."""
    return post_message(url, message(outcome, links), timeout_s=timeout_s, transport=transport)


def post_message(
    url: str,
    body: dict[str, Any],
    *,
    timeout_s: float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Delivery:
    """POST `body`; a timeout, a refused connection or a non-2xx answer is a failed
    Delivery (logged), never an exception. `timeout_s` defaults to $CANARYFLOW_NOTIFY_TIMEOUT_S
    or 5 s: a slow receiver must not hold up the release."""
    timeout_s = timeout_s if timeout_s is not None else float(os.environ.get(TIMEOUT_ENV, "5"))
    try:
        with httpx.Client(timeout=timeout_s, transport=transport) as client:
            resp = client.post(url, json=body)
    except httpx.HTTPError as exc:
        detail = f"webhook not delivered: {type(exc).__name__} after at most {timeout_s:g} s"
        log.warning(detail)
        return Delivery(False, detail)
    if resp.is_success:
        return Delivery(True, f"webhook delivered ({resp.status_code})")
    detail = f"webhook not delivered: the receiver answered {resp.status_code}"
    log.warning(detail)
    return Delivery(False, detail)


def _prefect_ui() -> str | None:
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.ui_url:
        return str(settings.ui_url).rstrip("/")
    api = settings.api.url
    return str(api).removesuffix("/").removesuffix("/api") if api else None
