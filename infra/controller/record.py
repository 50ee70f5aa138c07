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


class StepRecord(_Record):
    """One load run + analysis of a canary step (a step may take several: extend/retry)."""

    weight: int = Field(description="Canary share of traffic (%).")
    attempt: int = Field(
        description="Run number within the step, from 0: the fail-only probe (and its recheck), "
        "then the full analysis's runs (extend, recheck, retry each add one)."
    )
    requests: int = Field(description="Requests the load was sized to.")
    outcome: str = Field(description="pass | fail | inconclusive | hard_failure")
    action: str = Field(
        description="continue (probe) | advance | extend | recheck | retry | rollback"
    )
    reason: str
    table: list[dict[str, Any]] = Field(description="StepVerdict.table(): one row per check.")
    elapsed_s: float = Field(description="Seconds since the step's weight was set.")
    reports: dict[str, Path] = Field(default_factory=dict, description="HTML reports by kind.")


class CanaryResult(_Record):
    """The canary loop's answer: did every step pass, and what was measured."""

    passed: bool
    aborted: bool = Field(False, description="An error (not a verdict) stopped the loop.")
    reasons: tuple[str, ...] = ()
    steps: tuple[StepRecord, ...] = ()


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

    @property
    def reports(self) -> dict[str, Path]:
        """Every HTML report, keyed `<kind>-step-<weight>-<attempt>`."""
        return {
            f"{kind}-step-{s.weight}-{s.attempt}": path
            for s in self.steps
            for kind, path in s.reports.items()
        }

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
