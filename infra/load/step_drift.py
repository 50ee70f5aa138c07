"""A canary step's drift: the canary's answers against the stable's, on the step's traffic.

    rows = StepDriftRows()
    rows.start(weight=25, since=t0)                     # a new step
    rows.add_records([locust_results, paired_jsonl])    # each batch (no capture directory)
    frame = rows.frame(capture_dir, until=time.time())  # variant / prompt / completion
    drift = judge_step_drift(frame, html_path, max_share=0.5)   # None: nothing to compare

Both sides come from the same step: the same prompts (the router splits one stream; the
paired window sends each row to both), the same machine, the same time. Drift then means
the canary answers differently from the stable, which is what a canary check can act on.
The old reference, the release's evaluation set with its expected responses, rolled a good
model back when its answers were longer than the reference's (a sentence where the set
expects a word) or when the set had no expected responses at all: the empty completions
made output_length and answer_format drift for every model, a share of 0.5, the limit.

Rows: with a capture directory (the Docker target), every 2xx request the servers captured
since the step began, users' included, labelled by the role each model version has now;
without one (Kubernetes), or when the capture holds no rows of one of the variants (servers
that capture nothing), the load's and the paired window's own records of the step, kept in
memory batch by batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]

from infra.errors import DriftError
from validation.drift import DriftResult, detect_drift
from validation.metrics.capture_log import relabel

COLUMNS = ["variant", "prompt", "completion"]
log = logging.getLogger("canaryflow.load")


class StepDriftRows:
    """The step's (variant, prompt, completion) rows so far."""

    def __init__(self) -> None:
        self.weight: int | None = None
        self.since = 0.0
        self._batches: list[pd.DataFrame] = []

    def start(self, weight: int, since: float) -> None:
        """A new step at `weight` whose traffic counts from `since` (epoch seconds)."""
        if weight != self.weight:
            self.weight, self.since, self._batches = weight, since, []

    def add_records(self, paths: Iterable[Path]) -> None:
        """One batch's load/paired records (read once; unreadable files are skipped)."""
        for path in paths:
            rows = _records(path)
            if rows is not None:
                self._batches.append(rows)

    def frame(self, capture_dir: Path | None, until: float,
              roles: Mapping[str, str] | None = None) -> pd.DataFrame:  # fmt: skip
        """Captured rows of the step when the target keeps a capture, else the records.
        `roles` ({model version: role now}) labels the captured rows: a server's label is
        fixed at container start, so a promoted stable still writes 'canary'."""
        if capture_dir is not None and capture_dir.is_dir():
            from infra.monitor.drift_watch import capture_window

            window = capture_window(capture_dir, max(until - self.since, 1e-3), now=until,
                                    include_load_tests=True)  # fmt: skip
            captured = relabel(window.frame, roles)[COLUMNS]
            if {"stable", "canary"} <= set(captured["variant"]):
                return captured
            # servers that capture nothing (capture off, an image without the middleware):
            # the load's and the paired window's own records are the evidence there is
        if not self._batches:
            return pd.DataFrame(columns=COLUMNS)
        return pd.concat(self._batches, ignore_index=True)


def judge_step_drift(frame: pd.DataFrame, html_path: Path, max_share: float
                     ) -> DriftResult | None:  # fmt: skip
    """Canary rows (current) against stable rows (reference); None when a side has none
    (the first release has no stable) or Evidently cannot compute it."""
    stable = frame[frame["variant"] == "stable"][["prompt", "completion"]]
    canary = frame[frame["variant"] == "canary"][["prompt", "completion"]]
    if stable.empty or canary.empty:
        return None
    try:
        return detect_drift(stable, canary, html_path=html_path, drift_share=max_share)
    except (DriftError, ValueError, KeyError) as exc:
        log.warning("step drift not computed: %s", exc)
        return None


def _records(path: Path) -> Any:
    """The answered rows of one load/paired record file; None if unreadable."""
    try:
        rows = pd.read_json(path, lines=True)
        if "ok" in rows.columns:
            rows = rows[rows["ok"].astype(bool)]
        return rows[COLUMNS]
    except (OSError, ValueError, KeyError):  # no file / no rows / no columns
        return None
