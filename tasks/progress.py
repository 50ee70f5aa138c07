"""The running release as a Prefect progress artifact: a bar on the flow run's Artifacts tab
that moves with each phase and each canary step, with the phase's line as its description.

    shown = ReleaseProgress(release_id, steps=[10, 25, 50])
    shown.phase("validate")                          # 10 %
    shown.canary(25, "canary 25%: batch 3, 412 requests, 95 s — ...")

Best effort: outside a Prefect flow run, or when the API does not answer, nothing is shown
and the release goes on (the printed lines and `canaryflow status` still say where it is).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

# How far along a release is when each phase begins, in percent.
PHASES = {
    "start": 0.0,
    "reconcile": 2.0,
    "resolve": 4.0,
    "validate": 6.0,
    "package": 15.0,
    "build": 20.0,
    "deploy": 45.0,
    "canary": 55.0,
    "approval": 92.0,
    "decide": 95.0,
    "done": 100.0,
}
_CANARY_SPAN = PHASES["approval"] - PHASES["canary"]


def canary_percent(steps: Sequence[int], weight: int) -> float:
    """Progress when the step at `weight` runs: the canary span shared out by step."""
    index = list(steps).index(weight) if weight in steps else 0
    return PHASES["canary"] + _CANARY_SPAN * index / max(1, len(steps))


class ReleaseProgress:
    def __init__(self, release_id: str, steps: Sequence[int]) -> None:
        self.release_id, self.steps = release_id, list(steps)
        self.artifact: Any = None
        self.percent = 0.0
        self._off = False

    def phase(self, phase: str) -> None:
        self._show(PHASES.get(phase, self.percent), f"release {self.release_id}: {phase}")

    def canary(self, weight: int, line: str) -> None:
        """A canary batch of the step at `weight` (which places it among the steps)."""
        self._show(canary_percent(self.steps, weight), line)

    def done(self, verdict: str) -> None:
        self._show(PHASES["done"], f"release {self.release_id}: {verdict}")

    def _show(self, percent: float, description: str) -> None:
        self.percent = max(self.percent, percent)  # a bar never moves back
        if self._off:
            return
        try:
            from prefect.artifacts import create_progress_artifact, update_progress_artifact
            from prefect.runtime import flow_run

            if flow_run.get_id() is None:
                self._off = True  # not a flow run: no place to show a bar
                return
            if self.artifact is None:
                self.artifact = create_progress_artifact(self.percent, description=description)
            else:
                update_progress_artifact(self.artifact, self.percent, description=description)
        except Exception as exc:  # the bar is for people; the release must not depend on it
            self._off = True
            log.warning("release progress not shown in Prefect: %s", exc)
