"""The manual approval before the final promote (canary.approval: manual).

    approver = PrefectApprover()           # FakeApprover(Answer(approve=True, by="ana")) in tests
    approver.unavailable()                 # None, or why nobody could approve here (refused early)
    action = ask_approval(approver, controls, release_id, timeout_s=600, summary=markdown)
    result = judge_approval(result, action)     # approved → still passed; else rolled back

PrefectApprover pauses the flow run with Prefect's `pause_flow_run(wait_for_input=…)`: the
Prefect UI shows the form (approve, note, by); `canaryflow approve RELEASE [--reject]` sends
the same input through `resume_flow_run`, so the UI and the CLI are one path. No answer
within the timeout: the canary is rolled back ("approval timed out after N s"), through
decide.py like any verdict.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from pydantic import BaseModel, Field

from infra.controller.controls import Approval, ReleaseControls, now_utc
from infra.controller.record import CanaryResult, ManualAction


class ApprovalInput(BaseModel):
    """The approval form (the Prefect UI's input form; `canaryflow approve` sends it too)."""

    approve: bool = Field(description="Promote the canary (false: roll it back).")
    note: str = Field("", description="Why, for the record.")
    by: str = Field("", description="Who decides (for the record).")


class Answer(BaseModel):
    approve: bool
    by: str
    note: str = ""


class Approver(Protocol):
    """Asks a person whether to promote; blocks until an answer or the timeout."""

    def unavailable(self) -> str | None:
        """Why nobody could give an approval here; None when one can be given."""
        ...

    def ask(self, release_id: str, timeout_s: float, summary: str) -> Answer | None:
        """The answer, or None when none came within `timeout_s`."""
        ...


class FakeApprover:
    """Answers `answer` (None: times out); `reason` makes it unavailable. Records asks."""

    def __init__(self, answer: Answer | None = None, reason: str | None = None) -> None:
        self.answer, self.reason = answer, reason
        self.asked: list[tuple[str, float]] = []

    def unavailable(self) -> str | None:
        return self.reason

    def ask(self, release_id: str, timeout_s: float, summary: str) -> Answer | None:
        self.asked.append((release_id, timeout_s))
        return self.answer


def ask_approval(
    approver: Approver,
    controls: ReleaseControls | None,
    release_id: str,
    timeout_s: float,
    summary: str,
) -> ManualAction:
    """Ask, with the wait in the release's controls (so `canaryflow approve` can find it
    and refuses once it is over); the answer as a ManualAction (approve | reject | timeout)."""
    if controls is not None:
        controls.update(release_id, phase="approval", approval=Approval(
            asked_at=now_utc(), deadline=time.time() + timeout_s, timeout_s=timeout_s))  # fmt: skip
    answer = approver.ask(release_id, timeout_s, summary)
    if answer is None:
        action = ManualAction(action="timeout", by="canaryflow", at=now_utc(),
                              note=f"approval timed out after {timeout_s:.0f} s")  # fmt: skip
    else:
        action = ManualAction(action="approve" if answer.approve else "reject", by=answer.by,
                              at=now_utc(), note=answer.note)  # fmt: skip
    if controls is not None:
        outcome = {"approve": "approved", "reject": "rejected"}.get(action.action, "timed_out")
        asked = controls.get(release_id).approval
        done = None if asked is None else asked.model_copy(update={"outcome": outcome})
        controls.update(release_id, phase="decide", approval=done)
    return action


def judge_approval(result: CanaryResult, action: ManualAction) -> CanaryResult:
    """A passed canary stays passed only when approved; rejected or timed out: rolled back."""
    if action.action == "approve":
        said = f"approved by {action.by}" + (f": {action.note}" if action.note else "")
        return result.model_copy(update={"reasons": (*result.reasons, said)})
    if action.action == "reject":
        said = f"rejected by {action.by} at the approval" + (
            f": {action.note}" if action.note else ""
        )
    else:
        said = action.note
    return result.model_copy(update={"passed": False, "reasons": (said, *result.reasons)})


class PrefectApprover:
    """Prefect's pause with an input form, inside the release's flow run."""

    def unavailable(self) -> str | None:
        from prefect.context import FlowRunContext
        from prefect.settings import PREFECT_API_URL

        if FlowRunContext.get() is None:
            return (
                "the release does not run in a Prefect flow run, so no approval can reach it; "
                "run it as the `release` deployment (or set canary.approval: auto)"
            )
        if not PREFECT_API_URL.value():
            return (
                "the release runs on Prefect's throwaway ephemeral server, which neither the UI "
                "nor `canaryflow approve` can reach; set PREFECT_API_URL to your server (or set "
                "canary.approval: auto)"
            )
        return None

    def ask(self, release_id: str, timeout_s: float, summary: str) -> Answer | None:
        from prefect.exceptions import FlowPauseTimeout
        from prefect.flow_runs import pause_flow_run
        from prefect.input import RunInput

        form = RunInput.subclass_from_base_model_type(ApprovalInput)
        form = form.with_initial_data(description=summary, approve=False)
        timeout = max(1, math.ceil(timeout_s))
        try:
            got = pause_flow_run(wait_for_input=form, timeout=timeout,
                                 poll_interval=max(1, min(10, timeout // 10)),
                                 key=f"approval-{release_id}")  # fmt: skip
        except FlowPauseTimeout:
            _running_again()
            return None
        given = ApprovalInput.model_validate(got.model_dump(include={"approve", "note", "by"}))
        return Answer(approve=given.approve, by=given.by or "prefect-ui", note=given.note)


def _running_again() -> None:
    """After a pause timed out the run is still Paused on the server; left so, the server
    ends it Failed although the release then rolls back and records its verdict as usual
    (measured: PAUSED → FAILED). Set Running, it ends Completed like any judged release."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Running

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(context.flow_run.id, Running(), force=True)
