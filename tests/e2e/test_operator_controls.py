"""A person at the controls of real releases, and the verdict webhook (the operators' issue).

Real DockerTarget + HAProxy + Prometheus, Locust through the router, the real release flow
run as a Prefect flow against a real (temporary) Prefect server, file-backed controls under
a state dir, and a local HTTP webhook receiver. Every action is taken by the `canaryflow`
command (make setup's .venv/bin/canaryflow) in a separate process, as an operator does.
The serving containers are the stand-in server (tests/fixtures/faults.py), so each case
takes seconds, not the minutes a vLLM start costs.

1. paused mid-step, held (no requests while paused, the hold in the record), resumed;
   then, with canary.approval manual, approved with `canaryflow approve`: promoted (one
   release for both: each release costs a deploy and a step);
2. aborted by a person: rolled back, the version tagged rejected, the stable unchanged,
   the blast radius in the record;
3. approval not given within its timeout: rolled back, the run COMPLETED; a late approve
   exits 2;
and the receiver got exactly one message per verdict, each naming its release, and one
"awaits approval" message before the verdict of each release that asked for an approval.

The pause and the abort are asked before the canary starts (the CLI takes them once the
release is open): the loop applies them at its first look, so the case does not race an
automatic verdict of an identical canary.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import docker
import pytest

from flows.release import release
from infra.controller.approval import PrefectApprover
from infra.controller.controls import ControlState, FileControls
from infra.controller.record import ReleaseOutcome
from infra.registry import CHAMPION, registry_from_uri
from infra.spec import ReleaseSpec
from tests.fixtures.docker_target import make_config, running_target, standin_image
from tests.fixtures.faults import (
    NAME,
    FaultBench,
    StandinImages,
    assert_consistent,
    candidate_dir,
    spec_for,
)

pytestmark = [pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]
CANARYFLOW = Path(sys.executable).parent / "canaryflow"
SAME_SPEED = {"latency": {"enabled": False}, "ttft": {"enabled": False}, "itl": {"enabled": False}}


class Receiver:
    """A webhook receiver on loopback: every JSON body POSTed to it, in order."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        messages = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                messages.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verdicts(self) -> dict[str, list[str]]:
        """release id -> the verdicts its messages carried."""
        out: dict[str, list[str]] = {}
        for m in self.messages:
            if m["canaryflow"]["event"] == "verdict":
                out.setdefault(m["canaryflow"]["release_id"], []).append(m["canaryflow"]["verdict"])
        return out

    def events(self, release_id: str) -> list[str]:
        """The events of `release_id`'s messages, in order."""
        return [m["canaryflow"]["event"] for m in self.messages
                if m["canaryflow"]["release_id"] == release_id]  # fmt: skip


@dataclasses.dataclass
class Desk:
    """The operators' side of the bench: state dir, controls, receiver, CLI environment."""

    bench: FaultBench
    state: Path
    receiver: Receiver
    env: dict[str, str]
    seen: set[str] = dataclasses.field(default_factory=set)
    manual: set[str] = dataclasses.field(default_factory=set)  # asked for an approval

    @property
    def controls(self) -> FileControls:
        return FileControls(self.state / "releases")

    def release(self, model: Path, **canary: Any) -> ReleaseOutcome:
        """The release flow (a Prefect flow run) with the file controls and Prefect's approver."""
        base = spec_for(model, (50,), **SAME_SPEED).model_dump()
        spec = ReleaseSpec.model_validate({**base, "canary": {**base["canary"], **canary}})
        ports = dataclasses.replace(self.bench.ports(spec), controls=self.controls,
                                    approver=PrefectApprover())  # fmt: skip
        outcome = release(spec, ports)
        self.seen.add(outcome.release_id)
        if outcome.approval is not None:
            self.manual.add(outcome.release_id)
        return outcome

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(CANARYFLOW), *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        print(f"$ canaryflow {' '.join(args)} → {done.returncode}: {done.stdout}{done.stderr}")
        return done

    def wait(self, what: str, ok: Callable[[ControlState], bool], timeout_s: float = 300,
             ) -> ControlState:  # fmt: skip
        """The newest release not seen before, once `ok` holds for it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for state in self.controls.releases():
                if state.release_id not in self.seen and ok(state):
                    return state
            time.sleep(0.25)
        newest = [s.model_dump() for s in self.controls.releases()[:2]]
        raise AssertionError(f"no new release reached '{what}' in {timeout_s:.0f} s: {newest}")


class Operator:
    """Runs `script(desk)` on a thread beside the release; its failure fails the test."""

    def __init__(self, desk: Desk, script: Callable[[Desk], None]) -> None:
        self.error: BaseException | None = None

        def body() -> None:
            try:
                script(desk)
            except BaseException as exc:  # reported by check()
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def check(self) -> None:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the operator's script did not end"
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def desk(docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[Desk]:  # fmt: skip
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    root = tmp_path_factory.mktemp("operators")
    receiver = Receiver()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        mp.setenv("CANARYFLOW_NOTIFY_WEBHOOK_URL", receiver.url)
        mp.setenv("CANARYFLOW_STATE", str(root / "state"))
        with prefect_test_harness(server_startup_timeout=90):
            api = PREFECT_API_URL.value()
            env = {**os.environ, "PREFECT_API_URL": api, "CANARYFLOW_STATE": str(root / "state")}
            config = make_config(root / "target", ready_timeout_s=20, drain_timeout_s=5,
                                 stop_grace_s=3)  # fmt: skip
            uri = f"sqlite:///{root / 'mlflow.db'}"
            with running_target(config) as target:
                images = StandinImages(target.client, standin_image(target.client))
                bench = FaultBench(target, registry_from_uri(uri), uri, root / "work", images)
                d = Desk(bench, root / "state", receiver, env)
                first = d.release(candidate_dir(root, "v1"))
                assert first.verdict == "promoted", first.reasons
                yield d
    receiver.server.shutdown()


def _served(desk: Desk) -> str:
    stable = desk.bench.target.status().stable
    assert stable is not None
    return stable.model_version


def test_paused_mid_step_held_resumed_then_approved_promotes(desk: Desk, tmp_path: Path) -> None:
    """One release, two of the operators' paths: a pause mid-step that holds the step and
    a resume; then, every step advanced, the manual approval given with the CLI."""
    held_for = 8.0
    seen: dict[str, Any] = {}

    def operate(d: Desk) -> None:
        rid = d.wait("open", lambda s: s.state == "running").release_id
        assert d.cli("pause", rid, "--by", "ana", "--note", "hold the e2e").returncode == 0
        state = d.wait("pause applied", lambda s: bool(s.actions) and s.actions[0].applied)
        assert (state.weight, state.shown_state) == (50, "paused")
        status = d.cli("status")
        assert rid in status.stdout, status.stdout
        assert "paused" in status.stdout, status.stdout
        time.sleep(held_for)
        seen["held_requests"] = (state.requests, d.controls.get(rid).requests)
        assert d.cli("resume", rid, "--by", "ana").returncode == 0
        d.wait("awaiting approval", lambda s: s.shown_state == "awaiting approval")
        seen["asked"] = time.monotonic()
        assert d.cli("approve", rid, "--by", "cy", "--note", "looks good").returncode == 0

    op = Operator(desk, operate)
    outcome = desk.release(candidate_dir(tmp_path, "paused"), approval="manual",
                           approval_timeout_s=300)  # fmt: skip
    op.check()
    assert outcome.verdict == "promoted", outcome.reasons
    before, after = seen["held_requests"]
    assert before == after, f"requests went on while paused: {before} → {after}"
    assert [(a.action, a.by, a.weight) for a in outcome.manual] == [
        ("pause", "ana", 50), ("resume", "ana", 50), ("approve", "cy", None)]  # fmt: skip
    step = outcome.steps[-1]
    assert step.held_s >= held_for - 1, step.held_s
    assert _served(desk) == outcome.version
    print(f"paused {step.held_s:.1f} s at 50 %, resumed, approved by cy, promoted "
          f"v{outcome.version}")  # fmt: skip


def test_aborted_by_a_person_rolls_back(desk: Desk, tmp_path: Path) -> None:
    before = _served(desk)

    def operate(d: Desk) -> None:
        rid = d.wait("open", lambda s: s.state == "running").release_id
        assert d.cli("abort", rid, "--by", "bo", "--note", "not today").returncode == 0

    op = Operator(desk, operate)
    outcome = desk.release(candidate_dir(tmp_path, "aborted"))
    op.check()
    assert outcome.verdict == "rolled_back", outcome.reasons
    assert outcome.reasons[0].startswith("aborted by bo at step 50%"), outcome.reasons
    assert outcome.blast_radius is not None
    assert _served(desk) == before
    assert outcome.version is not None
    assert desk.bench.registry.get(NAME, outcome.version).rejected
    assert desk.bench.registry.get_by_alias(NAME, CHAMPION).version == before
    assert_consistent(desk.bench.target, desk.bench.registry)
    late = desk.cli("resume", outcome.release_id)
    assert late.returncode == 2, late  # decided: refused, nothing changes


def test_approval_not_given_in_time_rolls_back(desk: Desk, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    before = _served(desk)
    outcome = desk.release(candidate_dir(tmp_path, "timed-out"), approval="manual",
                           approval_timeout_s=4)  # fmt: skip
    assert outcome.verdict == "rolled_back", outcome.reasons
    assert any("approval timed out" in r for r in outcome.reasons), outcome.reasons
    assert _served(desk) == before
    state = desk.controls.get(outcome.release_id)
    assert state.flow_run_id is not None
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(state.flow_run_id))
    assert run.state is not None
    assert run.state.is_completed(), run.state
    late = desk.cli("approve", outcome.release_id)
    assert late.returncode == 2, late


def test_the_webhook_got_one_message_per_verdict(desk: Desk) -> None:
    """Last in the module: every release above (and the first) told the receiver once."""
    got = desk.receiver.verdicts()
    assert desk.seen <= set(got), f"releases without a message: {desk.seen - set(got)}"
    assert all(len(v) == 1 for v in got.values()), got
    assert sorted(v[0] for v in got.values()) == sorted(
        ["promoted", "promoted", "rolled_back", "rolled_back"]), got  # fmt: skip
    print("webhook messages:", got)
    assert len(desk.manual) == 2, desk.manual  # approved, and timed out
    for rid in desk.manual:  # told when the wait began, then the verdict
        assert desk.receiver.events(rid) == ["approval_requested", "verdict"], rid
