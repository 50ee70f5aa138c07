"""canary.approval: manual against a real Prefect server: the release flow (fake ports, a
real PrefectApprover and file-backed controls) pauses for its input form; `canaryflow
approve` (a separate process, as an operator runs it) resumes it → promoted; no answer
within the timeout → rolled back, and a late approval is refused with exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.controller.controls import ControlState, FileControls
from tests.fixtures.prefect_server import PrefectServer, running_prefect_server

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# The release flow with fake ports except the approval path: FileControls + PrefectApprover.
_CHILD = """
import json, sys
from pathlib import Path
from flows.release import release
from infra.controller.approval import PrefectApprover
from infra.controller.controls import FileControls
from infra.spec import ReleaseSpec
from tests.fixtures.release_ports import make_ports, serve
tmp, timeout = Path(sys.argv[1]), float(sys.argv[2])
ports = make_ports(tmp, controls=FileControls(tmp / "releases"), approver=PrefectApprover())
serve(ports, tmp, "tiny-chat", "v1", "v2")
spec = ReleaseSpec(model="models:/tiny-chat@challenger",
                   canary={"approval": "manual", "approval_timeout_s": timeout})
outcome = release(spec, ports)
print("OUTCOME " + json.dumps({"verdict": outcome.verdict, "reasons": outcome.reasons,
                               "approval": outcome.approval.model_dump()}))
"""


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with running_prefect_server(tmp_path_factory.mktemp("prefect")) as server:
        yield server


def _env(server: PrefectServer, state: Path) -> dict[str, str]:
    return {**os.environ, **server.env, "CANARYFLOW_STATE": str(state), "PYTHONPATH": str(ROOT)}


def _start(server: PrefectServer, tmp: Path, timeout_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp), str(timeout_s)],
                            cwd=ROOT, env=_env(server, tmp), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _awaiting(tmp: Path, child: subprocess.Popen[str], within_s: float = 90) -> ControlState:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        states = FileControls(tmp / "releases").releases()
        if states and states[0].approval is not None:
            return states[0]
        assert child.poll() is None, child.communicate()[0][-3000:]
        time.sleep(0.5)
    child.kill()
    raise AssertionError(f"no approval asked within {within_s} s: {child.communicate()[0]}")


def _cli(server: PrefectServer, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], cwd=ROOT,
                          env=_env(server, tmp), capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def _outcome(child: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = child.communicate(timeout=120)
    line = next((x for x in out.splitlines() if x.startswith("OUTCOME ")), None)
    assert line is not None, out[-3000:]
    result: dict[str, object] = json.loads(line.removeprefix("OUTCOME "))
    return result


def test_approve_from_the_cli_promotes(prefect_api: PrefectServer, tmp_path: Path) -> None:
    child = _start(prefect_api, tmp_path, 60)
    state = _awaiting(tmp_path, child)
    approved = _cli(prefect_api, tmp_path, "approve", state.release_id, "--by", "ana",
                    "--note", "looks good")  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    outcome = _outcome(child)
    assert outcome["verdict"] == "promoted"
    assert outcome["approval"]["action"] == "approve"  # type: ignore[index]
    assert outcome["approval"]["by"] == "ana"  # type: ignore[index]
    again = _cli(prefect_api, tmp_path, "approve", state.release_id)
    assert again.returncode == 2
    assert "ReleaseNotRunningError" in again.stderr


def test_no_answer_within_the_timeout_rolls_back(
    prefect_api: PrefectServer, tmp_path: Path
) -> None:
    child = _start(prefect_api, tmp_path, 3)
    state = _awaiting(tmp_path, child)
    outcome = _outcome(child)
    assert outcome["verdict"] == "rolled_back"
    assert "approval timed out after 3 s" in outcome["reasons"]  # type: ignore[operator]
    url = f"{prefect_api.api_url}/flow_runs/{state.flow_run_id}"
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback server
        assert json.load(resp)["state"]["type"] == "COMPLETED"  # judged, not failed
    late = _cli(prefect_api, tmp_path, "approve", state.release_id)
    assert late.returncode == 2
    assert "ReleaseNotRunningError" in late.stderr
