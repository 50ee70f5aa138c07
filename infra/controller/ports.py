"""The controller's seams: what it needs from the world besides a target and a registry.

    load: StepLoad               run(weight, requests, out_dir) -> StepEvidence
    validator: CandidateCheck    check(model_dir, champion_dir) -> CheckReport
    images: ImageBuilder         build(model_dir) -> image tag (built and smoke-tested)

Real implementations: wiring.py (validation/, infra/image) and infra/load/step.py (Locust +
Evidently). Fakes for unit tests: fake.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from infra.controller.approval import Approver
from infra.controller.controls import ReleaseControls
from infra.registry.base import ModelRegistry
from infra.targets.base import DeployTarget
from validation.analysis import CanaryHealth
from validation.drift import DriftResult
from validation.metrics.base import MetricSource

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class UserImpact:
    """Real users' requests the canary answered in one batch (the blast radius's inputs)."""

    answered: int = 0
    """User requests (origin "user") the canary answered."""
    failed: int = 0
    """Of those, failed (5xx, timeout, cut-off stream)."""
    wrong: int | None = None
    """Of those, scored wrong (where a score exists); None: not scored."""
    first_request_at: float | None = None
    """Controller-clock time of the canary's first user request in the batch; None: none."""


@dataclass(frozen=True)
class StepEvidence:
    """What one batch (one load run) of a canary step measured.

    The loop adds every batch to the step's sequential state, so `source` must answer for
    this batch's traffic only (no overlap with the previous batch's window).
    """

    source: MetricSource
    """Per-variant metrics of the batch: errors (all traffic), latency, ttft, itl (the
    equal-conditions window when one ran), quality_paired or quality."""
    health: CanaryHealth
    """The canary's health over the run, for detect_hard_failure."""
    window_s: float
    """The window the source's samples cover (the run's duration and a margin)."""
    drift: DriftResult | None = None
    """Drift of the canary's traffic vs the reference; None: not computed (inconclusive)."""
    reports: Mapping[str, Path] = field(default_factory=dict)
    """Reports by kind ("locust", "evidently", "paired" records, "crosscheck" JSON)."""
    traffic: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Requests in the window by origin ("load", "user", "paired"), then variant; e.g. the
    user requests the canary answered (blast radius). Empty: not known."""
    users: UserImpact | None = None
    """Users' requests the canary answered in the batch, with how many failed or were
    wrong; None: only `traffic` (counts) is known."""


class StepLoad(Protocol):
    """Sends one step's load through the router and says what it measured."""

    def run(self, weight: int, requests: int, out_dir: Path) -> StepEvidence:
        """One batch: top traffic up to `requests` requests with the canary at `weight`%
        (users' requests count; with enough of them it sends none); outputs go to `out_dir`."""
        ...


@dataclass(frozen=True)
class CheckReport:
    """The pre-deploy validation of a candidate: empty `reasons` means it passed."""

    reasons: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    """What the check was judged on (e.g. the evaluation set's digest), for the record."""

    @property
    def passed(self) -> bool:
        return not self.reasons


class CandidateCheck(Protocol):
    """Artifact, memory fit and offline quality (vs threshold and vs the champion)."""

    def check(self, model_dir: Path, champion_dir: Path | None) -> CheckReport: ...


class ImageBuilder(Protocol):
    """Builds the serving image of a model and smoke-tests it; returns the image tag."""

    def build(self, model_dir: Path) -> str: ...


@dataclass
class ReleasePorts:
    """Everything a release touches, built once (wiring.real_ports) or from fakes in tests."""

    target: DeployTarget
    registry: ModelRegistry
    load: Callable[[Path], StepLoad]
    """The step load of a release, given the candidate's model dir (its golden set)."""
    check: CandidateCheck
    images: ImageBuilder
    work_dir: Path
    """Downloads, load outputs and reports of every release go under here."""
    tracking_uri: str | None = None
    """MLflow store for the release run; None: no MLflow run is logged."""
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    controls: ReleaseControls | None = None
    """Manual pause / resume / promote / abort (controls.py); None: none taken."""
    approver: Approver | None = None
    """Gives canary.approval: manual its answer (approval.py); None: such specs are refused."""
