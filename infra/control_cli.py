"""`canaryflow status | pause | resume | promote | abort | approve`: operate running releases.

    canaryflow status                          # running and recent releases, newest first
    canaryflow pause RELEASE [--by WHO] [--note WHY]
    canaryflow resume|promote|abort RELEASE    # applied at the release's next look
    canaryflow approve RELEASE [--reject]      # the approval a canary.approval: manual awaits

The requests go to the release's control file under the state dir (CANARYFLOW_STATE), the
same one the `control-release` deployment writes from the Prefect UI; `approve` resumes the
paused flow run with the approval form's input (PREFECT_API_URL), as the UI's form does.
A refused request (unknown, finished or decided release, no approval pending, too late)
changes nothing and exits 2.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, get_args

from infra.controller.approval import ApprovalInput
from infra.controller.controls import (
    Action,
    ControlState,
    FileControls,
    ReleaseControls,
    who,
)
from infra.errors import ApprovalNotPendingError, ApprovalTimedOutError, ControlError
from infra.settings import Settings

_HELP = {
    "pause": "stop sending load and hold the weights (the step's deadline stops too)",
    "resume": "continue a paused release",
    "promote": "promote now, on the evidence so far (through the usual decide path)",
    "abort": "roll the canary back now",
}


def controls() -> ReleaseControls:
    return FileControls(Settings().state / "releases")


def add_control_commands(sub: Any) -> None:
    """The control subcommands, on the `canaryflow` parser's subparsers."""
    st = sub.add_parser("status", help="list running and recent releases")
    st.add_argument("--all", action="store_true", help="every release, not the last 10")
    st.set_defaults(run=_status)
    for action in get_args(Action):
        p = sub.add_parser(action, help=_HELP[action])
        _release_args(p)
        p.set_defaults(run=_request, action=action)
    ap = sub.add_parser("approve", help="approve (or --reject) a release awaiting approval")
    _release_args(ap)
    ap.add_argument("--reject", action="store_true", help="reject: the canary is rolled back")
    ap.set_defaults(run=_approve)


def _release_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("release", help="release id (see `canaryflow status`)")
    p.add_argument("--by", default=None, help="who asks, for the record (default: login name)")
    p.add_argument("--note", default="", help="why, for the record")


def _status(ns: argparse.Namespace) -> int:
    states = controls().releases()
    running = [s for s in states if s.state != "finished"]
    shown = states if ns.all else running + [s for s in states if s.state == "finished"][:10]
    if not shown:
        print("no releases under the state dir yet")
        return 0
    print(status_table(sorted(shown, key=lambda s: s.started_at, reverse=True)))
    return 0


def status_table(states: list[ControlState]) -> str:
    """One line per release: id, model, version, state, phase, step, requests, updated."""
    head = ("release", "model", "version", "state", "phase", "step", "requests", "updated")
    rows = [head] + [(s.release_id, s.model, s.version or "?", s.shown_state, s.phase,
                      "-" if s.weight is None else f"{s.weight}%", str(s.requests),
                      s.updated_at) for s in states]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)  # fmt: skip


def _request(ns: argparse.Namespace) -> int:
    asked = controls().request(ns.release, ns.action, who(ns.by), ns.note)
    print(f"{ns.action} of {ns.release} by {asked.by} at {asked.at}: written down; the release "
          "applies it at its next look (`canaryflow status` shows it)")  # fmt: skip
    return 0


def _approve(ns: argparse.Namespace) -> int:
    form = ApprovalInput(approve=not ns.reject, note=ns.note, by=who(ns.by))
    send_approval(controls(), ns.release, form)
    print(f"{'rejected' if ns.reject else 'approved'} {ns.release} as {form.by}")
    return 0


def send_approval(store: ReleaseControls, release_id: str, form: ApprovalInput) -> None:
    """Resume the release's paused flow run with `form`, as the Prefect UI's form does;
    refused (named error, nothing sent) unless an approval is open and in time."""
    state = store.running(release_id)
    asked = state.approval
    if asked is None or asked.outcome not in (None, "timed_out") or state.flow_run_id is None:
        raise ApprovalNotPendingError(
            f"release {release_id} is not waiting for an approval (phase {state.phase}); an "
            "approval is asked only with canary.approval: manual, once every step advanced"
        )
    late = ApprovalTimedOutError(
        f"the approval of {release_id} timed out after {asked.timeout_s:.0f} s and the canary "
        "was rolled back; start a new release to try again"
    )
    if asked.outcome == "timed_out" or time.time() > asked.deadline:
        raise late
    from uuid import UUID

    from prefect.exceptions import FlowPauseTimeout, NotPausedError
    from prefect.flow_runs import resume_flow_run

    run_id = UUID(state.flow_run_id)
    try:
        for wait in (0.5, 1, 2, 4, 0):  # the run pauses a moment after the ask is written
            try:
                resume_flow_run(run_id, run_input=form.model_dump())
                return
            except NotPausedError:
                if not wait:
                    raise
                time.sleep(wait)
    except FlowPauseTimeout:
        raise late from None
    except NotPausedError:
        raise ApprovalNotPendingError(
            f"flow run {state.flow_run_id} of {release_id} is not paused for its approval "
            "(answered already, or not yet asked); `canaryflow status` shows where it is"
        ) from None
    except Exception as exc:  # the API unreachable, a refused input
        raise ControlError(
            f"could not resume flow run {state.flow_run_id} of {release_id}: "
            f"{type(exc).__name__}: {exc}. Check PREFECT_API_URL names the server the release "
            "runs on; `canaryflow status` shows whether it still awaits approval"
        ) from exc
