"""Manual requests on a release: the file-backed store, its refusals, the CLI and exit codes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.cli import main
from infra.control_cli import send_approval, status_table
from infra.controller.approval import ApprovalInput
from infra.controller.controls import Approval, FileControls, MemoryControls, ReleaseControls
from infra.errors import (
    ApprovalNotPendingError,
    ApprovalTimedOutError,
    ControlError,
    ReleaseDecidedError,
    ReleaseNotRunningError,
    UnknownReleaseError,
)

RID = "tiny-chat-20261201t170000z-abc123"


@pytest.fixture(params=["memory", "file"])
def controls(request: pytest.FixtureRequest, tmp_path: Path) -> ReleaseControls:
    store: ReleaseControls = (
        MemoryControls() if request.param == "memory" else FileControls(tmp_path)
    )
    store.open(RID, "tiny-chat", "7", flow_run_id=None)
    return store


def test_requests_round_trip_and_are_taken_once(controls: ReleaseControls) -> None:
    controls.request(RID, "pause", "ana", "looks odd")
    assert controls.get(RID).paused
    assert controls.get(RID).shown_state == "paused"
    taken = controls.take(RID, 25, 400)
    assert [(a.action, a.by, a.note) for a in taken] == [("pause", "ana", "looks odd")]
    assert controls.take(RID, 25, 500) == []  # applied once
    state = controls.get(RID)
    assert (state.weight, state.requests) == (25, 500)
    controls.request(RID, "resume", "bo")
    assert not controls.get(RID).paused


def test_the_file_store_is_json_under_the_release_folder(tmp_path: Path) -> None:
    FileControls(tmp_path).open(RID, "tiny-chat")
    FileControls(tmp_path).request(RID, "abort", "ana")
    again = FileControls(tmp_path).get(RID)  # another process's view
    assert (tmp_path / RID / "control.json").is_file()
    assert again.state == "decided"
    assert [a.action for a in again.actions] == ["abort"]


def test_unknown_finished_and_decided_releases_are_refused_unchanged(
    controls: ReleaseControls,
) -> None:
    with pytest.raises(UnknownReleaseError, match="canaryflow status"):
        controls.request("no-such-release", "pause", "ana")
    with pytest.raises(UnknownReleaseError):
        controls.request("../etc", "pause", "ana")
    controls.request(RID, "promote", "ana")
    with pytest.raises(ReleaseDecidedError, match="promote by ana"):
        controls.request(RID, "abort", "bo")
    controls.close(RID, "promoted")
    with pytest.raises(ReleaseNotRunningError, match="promoted"):
        controls.request(RID, "pause", "bo")
    assert [a.action for a in controls.get(RID).actions] == ["promote"]


def test_requests_that_make_no_sense_now_are_refused(controls: ReleaseControls) -> None:
    with pytest.raises(ControlError, match="not paused"):
        controls.request(RID, "resume", "ana")
    controls.request(RID, "pause", "ana")
    with pytest.raises(ControlError, match="already paused"):
        controls.request(RID, "pause", "ana")
    controls.update(RID, phase="approval")
    with pytest.raises(ControlError, match="canaryflow approve"):
        controls.request(RID, "abort", "ana")
    assert [a.action for a in controls.get(RID).actions] == ["pause"]


def test_an_approval_is_refused_when_none_is_pending_or_after_its_timeout(
    controls: ReleaseControls,
) -> None:
    form = ApprovalInput(approve=True, by="ana")
    with pytest.raises(ApprovalNotPendingError, match="not waiting"):
        send_approval(controls, RID, form)
    past = Approval(asked_at="x", deadline=time.time() - 1, timeout_s=5)
    controls.update(RID, flow_run_id="00000000-0000-0000-0000-000000000001", approval=past)
    with pytest.raises(ApprovalTimedOutError, match="timed out after 5 s"):
        send_approval(controls, RID, form)


def test_a_new_release_of_the_model_closes_one_whose_run_died(controls: ReleaseControls) -> None:
    controls.open("tiny-chat-20261201t180000z-def456", "tiny-chat")
    with pytest.raises(ReleaseNotRunningError, match="abandoned"):
        controls.request(RID, "pause", "ana")
    controls.request("tiny-chat-20261201t180000z-def456", "pause", "ana")


def test_status_lists_releases_with_their_step(controls: ReleaseControls) -> None:
    controls.take(RID, 10, 200)
    table = status_table(controls.releases())
    assert RID in table
    assert "10%" in table
    assert "running" in table


def test_cli_requests_status_and_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CANARYFLOW_STATE", str(tmp_path))
    FileControls(tmp_path / "releases").open(RID, "tiny-chat", "7")
    assert main(["pause", RID, "--by", "ana", "--note", "checking"]) == 0
    assert "written down" in capsys.readouterr().out
    assert main(["status"]) == 0
    assert "paused" in capsys.readouterr().out
    assert main(["pause", RID]) == 2  # already paused
    assert "already paused" in capsys.readouterr().err
    assert main(["abort", "tiny-chat-unknown"]) == 2
    assert "UnknownReleaseError" in capsys.readouterr().err
    assert main(["approve", RID, "--reject"]) == 2
    assert "ApprovalNotPendingError" in capsys.readouterr().err
    assert main(["promote", RID, "--by", "bo"]) == 0
    assert main(["abort", RID]) == 2
    assert "ReleaseDecidedError" in capsys.readouterr().err
    actions = FileControls(tmp_path / "releases").get(RID).actions
    assert [(a.action, a.by) for a in actions] == [("pause", "ana"), ("promote", "bo")]
    with pytest.raises(SystemExit):
        main(["freeze", RID])  # argparse: unknown command, exit 2


def test_the_operator_commands_do_not_load_torch(tmp_path: Path) -> None:
    """`canaryflow status` ran 26 s on a loaded 2-core machine while train-demo's flags
    imported torch for every command; only train-demo needs it."""
    import subprocess
    import sys

    code = ("import sys; from infra.cli import main; rc = main(['status']); "
            "sys.exit(10 if 'torch' in sys.modules else rc)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"CANARYFLOW_STATE": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no releases" in done.stdout
