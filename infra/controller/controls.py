"""Manual gates: pause, resume, promote now or abort a running release (DESIGN §2).

    controls = FileControls(settings.state / "releases")   # MemoryControls() in tests
    controls.open("tiny-chat-…", model="tiny-chat", version="7")   # the flow, at its start
    controls.request("tiny-chat-…", "pause", by="ana")               # canaryflow pause …
    looks = controls.bind("tiny-chat-…"); looks.look(25, 400)       # the loop, at every look
    controls.close("tiny-chat-…", "promoted")                        # the flow, at its end

A request is only written down; the canary loop applies it at its next look (between
batches), records who, when, at which step and the evidence then, and a promote or abort
ends the step loop like an automatic verdict: decide.py then changes the target exactly as
for those (decision recorded first, reconcile repairs a crash in the middle). So a crash
after a request loses nothing: the file still holds it, and the target is repaired by the
next release's reconcile like any half-done decision.

Refused requests (UnknownReleaseError, ReleaseNotRunningError, ReleaseDecidedError,
ControlError) change nothing. Hand-written rather than Prefect's own pause/suspend: the loop
must keep its weights and its evidence while paused, and a promote must end the step loop
through the same decide path; a suspended flow run would drop both (Prefect's pause is
used for the approval, approval.py, where the loop is over).
"""

from __future__ import annotations

import fcntl
import getpass
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from infra.controller.record import ManualAction
from infra.errors import (
    ControlError,
    ReleaseDecidedError,
    ReleaseNotRunningError,
    UnknownReleaseError,
)

Action = Literal["pause", "resume", "promote", "abort"]
ACTIONS: tuple[Action, ...] = ("pause", "resume", "promote", "abort")
_RELEASE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
CONTROL_FILE = "control.json"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def who(by: str | None = None) -> str:
    """`by` when given, else the login name of whoever runs the command."""
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


class Requested(BaseModel):
    """One manual request as written down; `applied` once the loop has acted on it."""

    action: Action
    by: str
    at: str
    note: str = ""
    applied: bool = False


class Approval(BaseModel):
    """The final approval the release waits for (canary.approval: manual)."""

    asked_at: str
    deadline: float = Field(description="Unix time after which an approval is refused.")
    timeout_s: float
    outcome: str | None = Field(None, description="approved | rejected | timed_out; None: open.")


class ControlState(BaseModel):
    """What `canaryflow status` shows of a release, and its requests."""

    release_id: str
    model: str
    version: str | None = None
    flow_run_id: str | None = Field(None, description="The release's Prefect flow run.")
    state: Literal["running", "decided", "finished"] = "running"
    phase: str = "start"
    weight: int | None = None
    requests: int = 0
    verdict: str | None = None
    started_at: str = Field(default_factory=now_utc)
    updated_at: str = Field(default_factory=now_utc)
    actions: list[Requested] = Field(default_factory=list)
    approval: Approval | None = None

    @property
    def paused(self) -> bool:
        toggles = [a.action for a in self.actions if a.action in ("pause", "resume")]
        return self.state == "running" and bool(toggles) and toggles[-1] == "pause"

    @property
    def shown_state(self) -> str:
        if self.state == "finished":
            return f"finished: {self.verdict}"
        if self.approval is not None and self.approval.outcome is None:
            return "awaiting approval"
        return "paused" if self.paused else self.state


class ReleaseControls:
    """The requests of every release; subclasses say where they are kept (_load/_save)."""

    def _create(self, release_id: str) -> None:
        """Make room for a new release's requests (a folder for FileControls)."""

    def open(
        self,
        release_id: str,
        model: str,
        version: str | None = None,
        flow_run_id: str | None = None,
    ) -> None:
        """A release starts: it accepts requests from now on. An earlier release of the
        model still marked running died on the way (one release per target at a time):
        it is closed as abandoned, since this release's reconcile settles its target."""
        for old in self.releases():
            if old.model == model and old.state != "finished" and old.release_id != release_id:
                self.close(old.release_id, f"abandoned (its run stopped; {release_id} "
                           "reconciled the target)")  # fmt: skip
        self._create(release_id)
        with self._locked(release_id):
            self._save(ControlState(release_id=release_id, model=model, version=version,
                                    flow_run_id=flow_run_id))  # fmt: skip

    def request(self, release_id: str, action: Action, by: str, note: str = "") -> Requested:
        """Write a request down for the loop's next look; refused (nothing written) when the
        release is unknown, finished, already decided, or the request makes no sense now."""
        with self._locked(release_id):
            state = self.running(release_id)
            if state.phase in ("approval", "decide"):
                hint = (f"; approve or reject it with `canaryflow approve {release_id} "
                        "[--reject]`" if state.phase == "approval" else "")  # fmt: skip
                raise ControlError(f"release {release_id} is past its canary steps "
                                   f"({state.phase}): too late to {action}{hint}")  # fmt: skip
            if action == "pause" and state.paused:
                raise ControlError(f"release {release_id} is already paused; resume it with "
                                   f"`canaryflow resume {release_id}`")  # fmt: skip
            if action == "resume" and not state.paused:
                raise ControlError(f"release {release_id} is not paused; nothing to resume")
            asked = Requested(action=action, by=by, at=now_utc(), note=note)
            state.actions.append(asked)
            if action in ("promote", "abort"):
                state.state = "decided"  # a second promote / abort is refused from now on
            self._save(state)
            return asked

    def running(self, release_id: str) -> ControlState:
        """The state of a release that still takes requests; a named error otherwise."""
        state = self.get(release_id)
        if state.state == "finished":
            raise ReleaseNotRunningError(
                f"release {release_id} has finished ({state.verdict}); its verdict stands. "
                "Start a new release to change what serves."
            )
        if state.state == "decided":
            last = next(a for a in reversed(state.actions) if a.action in ("promote", "abort"))
            raise ReleaseDecidedError(
                f"release {release_id} is already decided: {last.action} by {last.by} at "
                f"{last.at}; it is finishing that (see `canaryflow status`)"
            )
        return state

    def get(self, release_id: str) -> ControlState:
        state = self._load(release_id) if _RELEASE_ID.match(release_id) else None
        if state is None:
            raise UnknownReleaseError(
                f"no release {release_id!r} here; `canaryflow status` lists the running and "
                "recent ones (check CANARYFLOW_STATE if it ran on another state dir)"
            )
        return state

    def update(self, release_id: str, **fields: object) -> ControlState:
        """Set fields (phase, version, approval, …) of a release's state; returns it."""
        with self._locked(release_id):
            state = self.get(release_id).model_copy(update=fields)
            state.updated_at = now_utc()
            self._save(state)
            return state

    def take(self, release_id: str, weight: int, requests: int) -> list[Requested]:
        """The loop's look: records where it is, returns the requests not applied yet (and
        marks them applied)."""
        with self._locked(release_id):
            state = self.get(release_id)
            fresh = [a for a in state.actions if not a.applied]
            for asked in fresh:
                asked.applied = True
            state.weight, state.requests, state.updated_at = weight, requests, now_utc()
            self._save(state)
            return [a.model_copy() for a in fresh]

    def close(self, release_id: str, verdict: str) -> None:
        """The release has its verdict: later requests are refused."""
        self.update(release_id, state="finished", verdict=verdict)

    def bind(self, release_id: str) -> ReleaseLooks:
        return ReleaseLooks(self, release_id)

    def releases(self) -> list[ControlState]:
        """Every release known here, newest first."""
        states = [s for rid in self._ids() if (s := self._load(rid)) is not None]
        return sorted(states, key=lambda s: s.started_at, reverse=True)

    # -- storage ------------------------------------------------------------------------
    def _load(self, release_id: str) -> ControlState | None:
        raise NotImplementedError

    def _save(self, state: ControlState) -> None:
        raise NotImplementedError

    def _ids(self) -> list[str]:
        raise NotImplementedError

    @contextmanager
    def _locked(self, release_id: str) -> Iterator[None]:
        yield


class ReleaseLooks:
    """One release's requests as the canary loop sees them."""

    def __init__(self, controls: ReleaseControls, release_id: str) -> None:
        self.controls, self.release_id = controls, release_id

    def look(self, weight: int, requests: int) -> list[Requested]:
        return self.controls.take(self.release_id, weight, requests)


class MemoryControls(ReleaseControls):
    """In memory: the fake for unit tests (same rules as the file-backed one)."""

    def __init__(self) -> None:
        self.states: dict[str, ControlState] = {}

    def _load(self, release_id: str) -> ControlState | None:
        state = self.states.get(release_id)
        return None if state is None else state.model_copy(deep=True)

    def _save(self, state: ControlState) -> None:
        self.states[state.release_id] = state.model_copy(deep=True)

    def _ids(self) -> list[str]:
        return list(self.states)


class FileControls(ReleaseControls):
    """`<root>/<release_id>/control.json`, written atomically under an flock, so the CLI
    and the running flow (separate processes) never lose each other's writes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, release_id: str) -> Path:
        return self.root / release_id / CONTROL_FILE

    def _load(self, release_id: str) -> ControlState | None:
        try:
            return ControlState.model_validate_json(self._path(release_id).read_text())
        except FileNotFoundError:
            return None

    def _save(self, state: ControlState) -> None:
        path = self._path(state.release_id)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".control-")
        with os.fdopen(fd, "w") as f:
            f.write(state.model_dump_json(indent=1))
        os.replace(tmp, path)

    def _ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [p.parent.name for p in self.root.glob(f"*/{CONTROL_FILE}")]

    @contextmanager
    def _locked(self, release_id: str) -> Iterator[None]:
        if not _RELEASE_ID.match(release_id):
            yield  # get() names the bad id
            return
        folder = self.root / release_id
        if not folder.is_dir():  # unknown: get() says so; only open() creates the folder
            yield
            return
        with open(folder / ".control.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _create(self, release_id: str) -> None:
        (self.root / release_id).mkdir(parents=True, exist_ok=True)


@dataclass
class Taken:
    """What one look applied: the actions, the seconds held paused, the promote / abort."""

    actions: list[ManualAction] = field(default_factory=list)
    held_s: float = 0.0
    final: ManualAction | None = None


def take_requests(
    looks: ReleaseLooks,
    weight: int,
    requests: int,
    evidence: list[dict[str, object]],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    pause_s: float,
    say: Callable[[str], None] | None = None,
) -> Taken:
    """Apply the new requests at one look of the loop; while paused, sleep `pause_s` and
    look again (no batch is sent, the weights stay) until resume, promote or abort."""
    taken, held_since = Taken(), None  # held_since: clock() at the pause; None: not paused
    while True:
        for asked in looks.look(weight, requests):
            done = ManualAction(action=asked.action, by=asked.by, at=asked.at, note=asked.note,
                                weight=weight, requests=requests, evidence=evidence)  # fmt: skip
            taken.actions.append(done)
            if say is not None:
                say(f"canary {weight}%: {done.line()}")
            if asked.action == "pause":
                held_since = clock() if held_since is None else held_since
                continue
            if held_since is not None:  # resume, promote or abort end the hold
                taken.held_s += clock() - held_since
                held_since = None
            if asked.action in ("promote", "abort"):
                taken.final = done
                return taken
        if held_since is None:
            return taken
        sleep(pause_s)
