"""Manual gates through the release flow (fake ports, prefect_test_harness): a promote or
abort by hand goes through decide like an automatic verdict; the manual approval."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from flows.release import release
from infra.controller.approval import Answer, FakeApprover
from infra.controller.controls import Action, MemoryControls
from infra.controller.fake import good_canary
from infra.controller.ports import ReleasePorts, StepEvidence
from infra.errors import ReleaseFailedError
from infra.registry import CHAMPION
from infra.spec import ReleaseSpec
from infra.targets.fake import FakeTarget
from tests.fixtures.release_ports import (
    harness,  # noqa: F401 (autouse fixture)
    make_ports,
    serve,
)

NAME = "tiny-chat"
URI = f"models:/{NAME}@challenger"


def _ports(tmp: Path, action: Action | None = None, **kw: object) -> ReleasePorts:
    """Fake ports whose load asks for `action` (by "ana") after the canary's first batch."""
    controls, inner = MemoryControls(), good_canary()

    def profile(weight: int, requests: int) -> StepEvidence:
        (running,) = [s for s in controls.releases() if s.state == "running"] or [None]
        assert running is None or running.phase == "canary"  # what `canaryflow status` shows
        assert running is None or running.version == "2"  # known since package, not "?"
        if action is not None and running is not None and not running.actions:
            controls.request(running.release_id, action, "ana", note="by hand")
        return inner(weight, requests)

    ports = make_ports(tmp, profile, controls=controls, **kw)
    serve(ports, tmp, NAME, "v1", "v2")
    assert isinstance(ports.target, FakeTarget)
    ports.target.calls.clear()
    return ports


def _names(ports: ReleasePorts) -> list[object]:
    assert isinstance(ports.target, FakeTarget)
    return [a if n == "set_weights" else n for n, a in ports.target.calls if n != "status"]


def test_promote_by_hand_promotes_through_decide_with_the_record(tmp_path: Path) -> None:
    ports = _ports(tmp_path, "promote")
    outcome = release(ReleaseSpec(model=URI), ports)
    assert outcome.verdict == "promoted"
    assert outcome.reasons[0].startswith("promoted by ana at step 10%")
    assert _names(ports) == ["deploy", 10, "promote"]
    assert ports.registry.get_by_alias(NAME, CHAMPION).version == outcome.version
    assert [(a.action, a.by, a.weight) for a in outcome.manual] == [("promote", "ana", 10)]
    markdown = getattr(Artifact.get("release-tiny-chat"), "data", "")
    assert "## Manual actions" in markdown
    assert "**promote** by ana" in markdown
    assert isinstance(ports.controls, MemoryControls)
    assert ports.controls.get(outcome.release_id).verdict == "promoted"


def test_abort_by_hand_rolls_back_and_tags_the_version(tmp_path: Path) -> None:
    ports = _ports(tmp_path, "abort")
    outcome = release(ReleaseSpec(model=URI), ports)
    assert outcome.verdict == "rolled_back"
    assert outcome.reasons[0].startswith("aborted by ana at step 10%")
    assert outcome.version is not None
    assert ports.registry.get(NAME, outcome.version).rejected
    state = ports.target.status()
    assert state.stable is not None
    assert state.stable.model_version == "1"
    assert state.settled


MANUAL = {"approval": "manual", "approval_timeout_s": 30}


@pytest.mark.parametrize(("answer", "verdict", "said"), [
    (Answer(approve=True, by="ana"), "promoted", "approved by ana"),
    (Answer(approve=False, by="bo", note="too slow"), "rolled_back",
     "rejected by bo at the approval: too slow"),
    (None, "rolled_back", "approval timed out after 30 s"),
])  # fmt: skip
def test_manual_approval_decides_the_promote(
    tmp_path: Path, answer: Answer | None, verdict: str, said: str
) -> None:
    approver = FakeApprover(answer)
    ports = _ports(tmp_path, approver=approver)
    outcome = release(ReleaseSpec(model=URI, canary=MANUAL), ports)
    assert outcome.verdict == verdict
    assert said in outcome.reasons
    assert approver.asked == [(outcome.release_id, 30.0)]
    assert outcome.approval is not None
    assert outcome.manual[-1] == outcome.approval
    assert _names(ports)[-1] == ("promote" if verdict == "promoted" else "rollback")


def test_manual_approval_nobody_can_give_is_refused_before_any_deploy(tmp_path: Path) -> None:
    ports = _ports(tmp_path, approver=FakeApprover(reason="no flow run"))
    with pytest.raises(ReleaseFailedError, match=r"ApprovalUnavailableError.*no flow run"):
        release(ReleaseSpec(model=URI, canary=MANUAL), ports)
    assert _names(ports) == []
