"""The scheduled drift check: live traffic of a window vs the release's evaluation set.

    spec = DriftCheckSpec(model_name="team-model", evaluation={"dataset": "team-eval"})
    window = capture_window(capture_dir, spec.window_s, now=time.time())
    frame, outputs = evaluation_reference(evalset.rows)
    verdict = judge(window, frame, spec, html_path=Path("drift.html"), outputs=outputs)
    verdict.detected, verdict.summary(), verdict.event_payload()

Current = what the servers captured in the window (serving/capture.py JSONL), without the
load generator's own requests (X-Request-ID `cf-load-…`: canary analysis traffic is not user
traffic) and without failed requests. Reference = the evaluation set the releases are judged
on, named in the spec like a release's (an MLflow dataset or a file): its prompts, and its
expected responses where every row has one (`compare_outputs`); a set without them (judged
by LLM judges or guidelines) compares prompts only, since empty reference answers would make
every model's outputs look drifted. A champion's own golden.jsonl is read only with
`evaluation.allow_candidate_golden: true`, as in a release. Too few rows is "inconclusive":
no event, and the summary says how many rows there were and how many are needed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator

from infra.load.wire import is_synthetic
from validation.drift import DriftResult, detect_drift
from validation.evaluation.rows import EvalRow
from validation.evaluation.spec import EvaluationSpec
from validation.metrics.capture_log import capture_files, read_capture

DRIFT_EVENT = "canaryflow.drift.detected"
Status = Literal["drift", "no_drift", "inconclusive"]


class DriftCheckSpec(BaseModel):
    """What the drift check looks at and when it raises the alarm (the flow's parameter)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    model_name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Registered model to watch.")
    evaluation: EvaluationSpec = Field(
        None,  # refused by _named_reference, with what to give
        validate_default=True,
        description="The reference: the evaluation set the model's releases are judged on "
        "(evaluation.dataset, an MLflow evaluation dataset, or evaluation.path, a file).",
    )
    compare_outputs: bool | None = Field(
        None, description="Also compare the outputs' length and shape with the set's expected "
        "responses. Null: only when every row has one.",
    )  # fmt: skip
    target: Literal["docker"] = Field(
        "docker", description="Deploy target whose servers' capture is read."
    )
    target_settings: dict[str, Any] = Field(
        default_factory=dict, description="The model's target, as its releases name it "
        "(DockerTargetConfig fields over the worker's environment: at least its `name`).",
    )  # fmt: skip
    window_s: float = Field(3600.0, gt=0, description="Look-back window of live traffic (s).")
    since: float | None = Field(
        None, ge=0, description="Window start (epoch seconds); overrides window_s, so a "
        "window asked for now means the same traffic however long the run waits to start.",
    )  # fmt: skip
    min_rows: int = Field(
        100, ge=10, description="Captured requests needed in the window for a verdict."
    )
    max_share: float = Field(
        0.5, gt=0, le=1, description="Drift when this share of columns (or more) drifted."
    )
    include_load_tests: bool = Field(
        False, description="Also count the canary load generator's requests (cf-load-…)."
    )

    @field_validator("target_settings")
    @classmethod
    def _target_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            from infra.targets.settings_check import check_target_settings

            check_target_settings("docker", value)
        return value

    @field_validator("evaluation", mode="before")
    @classmethod
    def _named_reference(cls, value: Any) -> Any:
        if value is None:
            raise ValueError(
                "the drift check needs a reference: set `evaluation` to the evaluation set "
                "the model's releases are judged on ({'dataset': NAME} for an MLflow "
                "evaluation dataset, or {'path': FILE} for a JSONL/CSV/Parquet file)"
            )
        return value


def evaluation_reference(rows: Sequence[EvalRow]) -> tuple[pd.DataFrame, bool]:
    """The set as a prompt/completion frame, and whether every row has an expected response
    to compare outputs with (a row without one has an empty completion)."""
    answers = [row.expectations.get("expected_response") for row in rows]
    completions = ["" if a is None else str(a) for a in answers]
    frame = pd.DataFrame({"prompt": [row.prompt for row in rows], "completion": completions})
    return frame, bool(rows) and all(a is not None and str(a) != "" for a in answers)


@dataclass(frozen=True)
class CaptureWindow:
    """Live traffic of one window as a prompt/completion frame, and what was left out."""

    frame: pd.DataFrame
    since: float
    until: float
    n_seen: int
    n_load_tests: int
    n_failed: int


def capture_window(
    capture_dir: Path,
    window_s: float,
    *,
    now: float | None = None,
    since: float | None = None,
    include_load_tests: bool = False,
) -> CaptureWindow:
    """Captured 2xx chat records of the last `window_s` seconds, or from `since` on."""
    until = time.time() if now is None else now
    since = until - window_s if since is None else since
    files = capture_files(capture_dir) if capture_dir.is_dir() else []
    rows = read_capture(files)
    rows = rows[(rows["ts"] >= since) & (rows["ts"] <= until)]
    load = rows["request_id"].map(is_synthetic).astype(bool)
    ok = (rows["status"] >= 200) & (rows["status"] < 300) & rows["prompt"].notna()
    keep = ok & (include_load_tests | ~load)
    frame = rows.loc[keep, ["ts", "variant", "model_version", "prompt", "completion"]]
    return CaptureWindow(frame=frame.reset_index(drop=True), since=since, until=until,
                         n_seen=len(rows), n_load_tests=int(load.sum()),
                         n_failed=int((~ok & ~load).sum()))  # fmt: skip


@dataclass(frozen=True)
class DriftVerdict:
    """The drift check's answer with its evidence."""

    status: Status
    model_name: str
    champion: str | None
    window: CaptureWindow
    result: DriftResult | None
    reason: str

    @property
    def detected(self) -> bool:
        return self.status == "drift"

    def summary(self) -> str:
        return f"{self.status}: {self.reason}"

    def event_payload(self) -> dict[str, Any]:
        """What `canaryflow.drift.detected` carries: enough for retrain and for a person."""
        result = self.result
        return {
            "model": self.model_name,
            "champion_version": self.champion,
            "drift_share": None if result is None else round(result.drift_share, 4),
            "drifted_columns": [] if result is None else drifted_columns(result),
            "n_reference": None if result is None else result.n_reference,
            "n_current": len(self.window.frame),
            "window_start": self.window.since,
            "window_end": self.window.until,
            "report": None if result is None else result.html_path,
            "reason": self.reason,
        }

    def table(self) -> list[dict[str, Any]]:
        """One row per drift column (empty when no report was computed)."""
        if self.result is None:
            return []
        return [{"column": c.column, "method": c.method, "score": round(c.score, 4),
                 "threshold": c.threshold, "drifted": c.drifted}
                for c in self.result.columns]  # fmt: skip

    def markdown(self, links: Mapping[str, str] | None = None) -> str:
        """The record; `links` (infra/monitor/drift_record.drift_links): its MLflow run
        page and report page, which a browser opens (never a worker's file:// path)."""
        links = links or {}
        w = self.window
        lines = [f"# Drift check: {self.status}", "", f"**{self.model_name}** champion "
                 f"v{self.champion or '?'} — {self.reason}", "",
                 f"- window: {_utc(w.since)} → {_utc(w.until)}",
                 f"- live requests used: {len(w.frame)} (left out: {w.n_load_tests} "
                 f"load-test, {w.n_failed} failed)"]  # fmt: skip
        if "report" in links:
            lines.append(f"- Evidently report: [open in the MLflow UI]({links['report']})")
        elif self.result is not None and self.result.html_path:
            lines.append(f"- Evidently report: `{Path(self.result.html_path).name}` (no MLflow "
                         "UI address known: see the run's artifacts)")  # fmt: skip
        if "mlflow" in links:
            lines.append(f"- MLflow run: [{links['mlflow']}]({links['mlflow']})")
        if "mlflow_error" in links:
            lines.append(f"- MLflow run: not logged ({links['mlflow_error']})")
        rows = self.table()
        if rows:
            lines += [
                "",
                "| column | method | score | threshold | drifted |",
                "|---|---|---|---|---|",
            ]
            lines += ["| {column} | {method} | {score} | {threshold} | {drifted} |".format(**r)
                      for r in rows]  # fmt: skip
        return "\n".join(lines) + "\n"


def judge(
    window: CaptureWindow,
    reference: pd.DataFrame,
    spec: DriftCheckSpec,
    *,
    champion: str | None = None,
    html_path: Path | None = None,
    outputs: bool = True,
) -> DriftVerdict:
    """Evidently over the window vs the reference; inconclusive below `min_rows`.
    `outputs=False`: prompt columns only (a reference without answers)."""
    n = len(window.frame)
    if n < spec.min_rows:
        reason = (f"{n} live requests in the window, {spec.min_rows} needed; widen window_s "
                  "or wait for traffic")  # fmt: skip
        return DriftVerdict("inconclusive", spec.model_name, champion, window, None, reason)
    result = detect_drift(reference, window.frame[["prompt", "completion"]],
                          html_path=html_path, drift_share=spec.max_share,
                          outputs=outputs)  # fmt: skip
    columns = ", ".join(drifted_columns(result)) or "none"
    reason = (f"drift share {result.drift_share:.2f} (threshold {spec.max_share:.2f}) over "
              f"{n} requests; drifted columns: {columns}")  # fmt: skip
    if not outputs:
        reason += " (prompts only: the reference set has no expected responses to compare)"
    status: Status = "drift" if result.dataset_drift else "no_drift"
    return DriftVerdict(status, spec.model_name, champion, window, result, reason)


def drifted_columns(result: DriftResult) -> list[str]:
    return [c.column for c in result.columns if c.drifted]


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
