"""Verdict webhooks against a real HTTP receiver on loopback: one message per verdict,
Slack/Teams-compatible JSON; a receiver that fails or hangs never stops the release."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.artifacts import Artifact

from flows.release import release
from infra import notify
from infra.controller.approval import Answer, FakeApprover
from infra.controller.fake import FakeStepLoad, slow_canary
from infra.controller.record import ReleaseOutcome
from infra.spec import ReleaseSpec
from tests.fixtures.release_ports import harness  # noqa: F401 (autouse fixture)
from tests.unit.test_release_failures import NAME, make_ports, serve


class Receiver:
    """A loopback webhook receiver answering `status` after `delay_s`; keeps every body."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                time.sleep(delay_s)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    status, delay = getattr(request, "param", (200, 0.0))
    r = Receiver(status, delay)
    monkeypatch.setenv(notify.URL_ENV, r.url)
    monkeypatch.setenv(notify.TIMEOUT_ENV, "0.5")
    yield r
    r.close()


def record() -> str:
    data = getattr(Artifact.get(f"release-{NAME}"), "data", None)
    assert isinstance(data, str)
    return data


def test_the_message_is_slack_and_teams_shaped() -> None:
    outcome = ReleaseOutcome(release_id="r-1", model_name="m", version="3",
                             verdict="rolled_back", reasons=("latency p95 x2.1",))  # fmt: skip
    body = notify.message(outcome, {"mlflow": "http://127.0.0.1:5000/#/experiments/1/runs/x"})
    assert body["text"].startswith("↩️ canaryflow release rolled_back: m v3")
    assert "latency p95 x2.1" in body["text"]
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"
    assert (
        "<http://127.0.0.1:5000/#/experiments/1/runs/x|mlflow record>"
        in (body["blocks"][0]["text"]["text"])
    )
    assert body["canaryflow"]["verdict"] == "rolled_back"


def test_each_verdict_sends_one_message(receiver: Receiver, tmp_path: Path) -> None:
    ports = make_ports(tmp_path / "a")
    v2 = serve(ports, tmp_path / "a", "a", "b")
    assert release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports).verdict == "promoted"
    slow = make_ports(tmp_path / "b", load=lambda _d: FakeStepLoad(slow_canary()))
    v2 = serve(slow, tmp_path / "b", "a", "c")
    assert release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), slow).verdict == "rolled_back"
    assert [b["canaryflow"]["verdict"] for b in receiver.bodies] == ["promoted", "rolled_back"]
    assert "webhook delivered (200)" in record()
    assert receiver.url not in record()  # the URL is a credential


def test_a_release_waiting_for_approval_says_so_first(receiver: Receiver, tmp_path: Path) -> None:
    """With canary.approval manual: an "awaits approval" message when the wait begins (what
    to decide, by when, where), then the verdict's; the record says both were delivered."""
    ports = make_ports(tmp_path, approver=FakeApprover(Answer(approve=True, by="ana")))
    v2 = serve(ports, tmp_path, "a", "b")
    manual = {"approval": "manual", "approval_timeout_s": 30}
    outcome = release(ReleaseSpec(model=f"models:/{NAME}/{v2}", canary=manual), ports)
    assert outcome.verdict == "promoted"
    events = [(b["canaryflow"]["event"], b["canaryflow"]["release_id"]) for b in receiver.bodies]
    assert events == [("approval_requested", outcome.release_id), ("verdict", outcome.release_id)]
    asked = receiver.bodies[0]
    assert asked["text"].startswith(f"⏸️ canaryflow release awaits approval: {NAME} v{v2}")
    assert f"canaryflow approve {outcome.release_id}" in asked["text"]
    assert "within 30 s" in asked["text"]
    assert outcome.notes[0] == "approval request: webhook delivered (200)"
    assert "approval request: webhook delivered (200)" in record()


@pytest.mark.parametrize(
    ("receiver", "said"),
    [((500, 0.0), "the receiver answered 500"), ((200, 2.0), "ReadTimeout after at most 0.5 s")],
    indirect=["receiver"],
)
def test_a_failing_receiver_does_not_change_the_release(
    receiver: Receiver, said: str, tmp_path: Path
) -> None:
    ports = make_ports(tmp_path)
    v2 = serve(ports, tmp_path, "a", "b")
    outcome = release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert outcome.verdict == "promoted"
    assert outcome.notes == (f"webhook not delivered: {said}",)
    assert f"webhook not delivered: {said}" in record()
    assert len(receiver.bodies) == 1


def test_no_webhook_configured_means_notifications_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(notify.URL_ENV, raising=False)
    monkeypatch.setenv(notify.BLOCK_ENV, "no-such-block")
    ports = make_ports(tmp_path)
    v2 = serve(ports, tmp_path, "a", "b")
    outcome = release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert outcome.notes[0].startswith("notifications off")


def test_the_url_can_come_from_a_secret_block(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret

    Secret(value=receiver.url).save("test-webhook", overwrite=True)
    monkeypatch.delenv(notify.URL_ENV)
    monkeypatch.setenv(notify.BLOCK_ENV, "test-webhook")
    assert notify.webhook_url() == receiver.url
