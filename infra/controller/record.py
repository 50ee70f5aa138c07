"""What a release did and why: one record per analysed step, one outcome per release."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["promoted", "rolled_back", "rejected", "aborted", "error"]
"""promoted / rolled_back: judged by the canary; rejected: refused before deploy (the
candidate's fault); aborted: stopped on purpose (nothing to release, the canary could not be
deployed, a promote the registry could not record); error: the release could not be judged
(a failure on the release path, named in the reasons; the champion is unchanged)."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class BlastRadius(_Record):
    """What a rolled-back canary did to real users before it was stopped."""

    user_requests: int | None = Field(
        description="User requests the canary answered; None: the evidence cannot tell."
    )
    user_failed: int | None = Field(description="Of those, failed (5xx, timeout, cut stream).")
    user_wrong: int | None = Field(None, description="Of those, scored wrong; None: unscored.")
    canary_requests: int = Field(description="All requests the canary answered (load + users).")
    exposed_s: float = Field(
        description="Seconds from the canary's first request (its first nonzero weight when "
        "no request time is known) to the rollback decision."
    )
    seconds_to_zero: float | None = Field(
        None, description="exposed_s plus the rollback itself: from first request to 0 % "
        "weight (ReleaseOutcome fills it from the decide timing).",
    )  # fmt: skip


class ManualAction(_Record):
    """A person's action on a running release (infra/controller/controls.py), as applied."""

    action: str = Field(description="pause | resume | promote | abort | approve | reject")
    by: str = Field(description="Who asked (the CLI's --by, else the login name).")
    at: str = Field(description="When it was asked (UTC, ISO 8601).")
    note: str = ""
    weight: int | None = Field(None, description="Canary weight (%) when it was applied.")
    requests: int | None = Field(None, description="Requests of that step so far.")
    evidence: list[dict[str, Any]] = Field(
        default_factory=list, description="The step's StepVerdict.table() at that moment."
    )

    def line(self) -> str:
        """e.g. "promote by ana at 2026-12-01T17:00:00Z at step 25% (400 requests)"."""
        where = f" at step {self.weight}%" if self.weight is not None else ""
        where += f" ({self.requests} requests)" if self.requests is not None else ""
        return f"{self.action} by {self.by} at {self.at}{where}" + (
            f": {self.note}" if self.note else ""
        )


class StepRecord(_Record):
    """One canary step: its batches, every check's sequential verdict, and the action."""

    weight: int = Field(description="Canary share of traffic (%).")
    attempt: int = Field(
        description="Evidence run within the step, from 0; a failure under failure_threshold "
        "starts a fresh one."
    )
    requests: int = Field(description="Requests the step's batches were sized to, in all.")
    outcome: str = Field(description="pass | fail | inconclusive | hard_failure | manual")
    action: str = Field(description="advance | retry | rollback | promote (manual)")
    reason: str
    table: list[dict[str, Any]] = Field(
        description="StepVerdict.table() at the decision: one row per check (per quantile), "
        "with estimate, confidence sequence, decided_at_requests / decided_at_s, needs."
    )
    elapsed_s: float = Field(description="Seconds since the step's weight was set.")
    reports: dict[str, Path] = Field(default_factory=dict, description="HTML reports by kind.")
    batches: int = Field(0, description="Load runs (looks) the step took.")
    paused_batches: int = Field(0, description="Of those, batches with no traffic at all.")
    paused: str | None = Field(None, description='"paused: no traffic" when a batch had none.')
    blast_radius: BlastRadius | None = Field(
        None, description="On the step that rolled back: what the canary did to users."
    )
    manual: tuple[ManualAction, ...] = Field(
        (), description="Manual actions applied during the step (pause, resume, promote, abort)."
    )
    held_s: float = Field(0.0, description="Seconds the step was held by a manual pause.")


class CanaryResult(_Record):
    """The canary loop's answer: did every step pass, and what was measured."""

    passed: bool
    aborted: bool = Field(False, description="An error (not a verdict) stopped the loop.")
    reasons: tuple[str, ...] = ()
    steps: tuple[StepRecord, ...] = ()

    @property
    def blast_radius(self) -> BlastRadius | None:
        return next((s.blast_radius for s in reversed(self.steps) if s.blast_radius), None)


class ReleaseOutcome(_Record):
    """The verdict of a release with its evidence; the flow's return value."""

    release_id: str
    model_name: str
    version: str | None = Field(description="The candidate's registry version, once known.")
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    steps: tuple[StepRecord, ...] = ()
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per phase.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Offline metrics.")
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="What the offline check was judged on: evaluation set digest, source, "
        "dataset, evaluation runs; logged as tags of the release's MLflow run.",
    )
    image: str | None = None
    source: dict[str, str] = Field(
        default_factory=dict, description="What started it: git repo, ref and sha of a push."
    )
    phase: str | None = Field(
        None, description="The phase a verdict `error` happened in (validate, package, …)."
    )
    links: dict[str, str] = Field(
        default_factory=dict, description="Browser URLs of the record (prefect, mlflow)."
    )
    notes: tuple[str, ...] = Field(
        (), description="What became of the record itself: MLflow run, notification."
    )
    artifacts: tuple[str, ...] = Field(
        (), description="Paths logged to the release's MLflow run (reports/…, pictures/…)."
    )
    approval: ManualAction | None = Field(
        None, description="The manual approval before the promote (canary.approval: manual)."
    )

    @property
    def manual(self) -> tuple[ManualAction, ...]:
        """Every manual action of the release, in order (steps', then the approval)."""
        steps = tuple(a for s in self.steps for a in s.manual)
        return steps + ((self.approval,) if self.approval is not None else ())

    @property
    def reports(self) -> dict[str, Path]:
        """Every HTML report, keyed `<kind>-step-<weight>-<attempt>`."""
        return {
            f"{kind}-step-{s.weight}-{s.attempt}": path
            for s in self.steps
            for kind, path in s.reports.items()
        }

    @property
    def blast_radius(self) -> BlastRadius | None:
        """The rolled-back canary's blast radius, seconds_to_zero filled from the decide lap."""
        blast = next((s.blast_radius for s in reversed(self.steps) if s.blast_radius), None)
        if blast is None or self.verdict != "rolled_back":
            return None
        decide = self.timings.get("decide")
        return blast.model_copy(update={
            "seconds_to_zero": None if decide is None else blast.exposed_s + decide
        })  # fmt: skip

    def summary(self) -> str:
        """One line: the verdict, the candidate and the first reason."""
        first = f": {self.reasons[0]}" if self.reasons else ""
        return f"{self.verdict} — {self.model_name} v{self.version or '?'}{first}"


def new_release_id(model_name: str) -> str:
    """`<model>-<UTC time>-<6 hex>`: sortable, unique, safe in Docker labels and tags."""
    stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%Sz")
    return f"{model_name}-{stamp}-{uuid.uuid4().hex[:6]}".lower()


class Stopwatch:
    """Seconds per phase: `lap("validate")` records the time since the previous lap."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last = clock()
        self.laps: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = self.clock()
        self.laps[phase] = self.laps.get(phase, 0.0) + now - self.last
        self.last = now
