"""The decision record as text and numbers: markdown (verdict first), table rows, metrics."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from infra.controller.record import ReleaseOutcome, StepRecord

_COLUMNS = ("check", "outcome", "canary", "stable", "effect", "ci", "increase_ms", "alpha",
            "n_canary", "n_stable", "decided_at_requests", "decided_at_s", "needs",
            "test")  # fmt: skip
_NUMERIC = ("canary", "stable", "effect", "ci_low", "ci_high", "decided_at_requests",
            "decided_at_s")  # fmt: skip


def slug(text: str) -> str:
    """lowercase-with-dashes (Prefect artifact keys)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def markdown(outcome: ReleaseOutcome) -> str:
    """Verdict first, then reasons, every check of every step with its numbers, then links."""
    lines = [f"# Verdict: {outcome.verdict}", "",
             f"**{outcome.model_name} v{outcome.version or '?'}** — release "
             f"`{outcome.release_id}`" + (f", image `{outcome.image}`" if outcome.image else ""),
             "", "## Reasons", ""]  # fmt: skip
    if outcome.source:
        pushed = ", ".join(f"{k} `{v}`" for k, v in outcome.source.items())
        lines[3:3] = ["", f"Started by a git push: {pushed}"]
    lines += [f"- {r}" for r in outcome.reasons] or ["- (none recorded)"]
    if outcome.metrics:
        lines += ["", "## Offline checks", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(outcome.metrics.items())]
    if outcome.tags:
        lines += ["", "## Judged on", "", "| tag | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(outcome.tags.items())]
        if outcome.tags.get("canaryflow.eval_candidate_supplied") == "true":
            lines += ["", "**The candidate supplied its own evaluation set** "
                      "(allow_candidate_golden): it chose the rows it was judged on."]  # fmt: skip
    lines += _steps_section(outcome.steps)
    lines += _manual_section(outcome)
    lines += _blast_section(outcome)
    if outcome.timings:
        lines += ["", "## Timings (s)", "", "| phase | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in outcome.timings.items()]
    if outcome.links:
        lines += ["", "## Record", ""]
        lines += [f"- [{name}]({url})" for name, url in outcome.links.items()]
    if outcome.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in outcome.notes]
    lines += _pictures_section(outcome)
    if outcome.reports:
        lines += ["", "## Reports", ""]
        lines += [_report_line(outcome, k, p, a) for k, (p, a) in report_artifacts(outcome).items()]
    return "\n".join(lines) + "\n"


def report_artifacts(outcome: ReleaseOutcome) -> dict[str, tuple[Path, str]]:
    """{report key: (file, path in the MLflow run)}: `reports/step-<w>-<a>/<file name>`,
    `reports/step-<w>-<a>/<kind>/<file name>` where two kinds of a step share a file name."""
    out: dict[str, tuple[Path, str]] = {}
    for step in outcome.steps:
        names = [path.name for path in step.reports.values()]
        for kind, path in step.reports.items():
            sub = f"{kind}/" if names.count(path.name) > 1 else ""
            art = f"reports/step-{step.weight}-{step.attempt}/{sub}{path.name}"
            out[f"{kind}-step-{step.weight}-{step.attempt}"] = (path, art)
    return out


def artifact_url(outcome: ReleaseOutcome, path: str) -> str | None:
    """The MLflow UI's page of the run's artifact `path`; None: no UI known or not logged."""
    run_page = outcome.links.get("mlflow")
    if not run_page or path not in outcome.artifacts:
        return None
    return f"{run_page}/artifacts/{quote(path)}"


def artifact_file_url(outcome: ReleaseOutcome, path: str) -> str | None:
    """The MLflow server's URL of the artifact's bytes (`get-artifact`), for <img>."""
    run_page = outcome.links.get("mlflow")
    if not run_page or path not in outcome.artifacts or "/#/" not in run_page:
        return None
    base, _, route = run_page.partition("/#/")
    run_id = route.rstrip("/").rsplit("/", 1)[-1]
    return f"{base}/get-artifact?path={quote(path, safe='')}&run_uuid={quote(run_id, safe='')}"


def _report_line(outcome: ReleaseOutcome, key: str, path: Path, art: str) -> str:
    if (url := artifact_url(outcome, art)) is not None:
        return f"- [{key}]({url})"
    if art in outcome.artifacts:
        return f"- {key}: `{art}` in the release's MLflow run"
    return f"- {key}: `{path}` on the worker (not in an MLflow run)"


def _pictures_section(outcome: ReleaseOutcome) -> list[str]:
    pictures = [a for a in outcome.artifacts if a.startswith("pictures/")]
    if not pictures:
        return []
    lines = ["", "## Pictures", ""]
    for art in pictures:
        page, image = artifact_url(outcome, art), artifact_file_url(outcome, art)
        name = art.removeprefix("pictures/").removesuffix(".png")
        if page is None or image is None:
            lines.append(f"- {name}: `{art}` in the release's MLflow run")
        else:
            # The Prefect UI renders `![..](..)` but shows an image inside a link as raw
            # text (seen in headless Chromium): the image, then its page as its own link.
            lines += [f"![{name}]({image})", "", f"[{name} in MLflow]({page})", ""]
    return lines


def _steps_section(steps: tuple[StepRecord, ...]) -> list[str]:
    if not steps:
        return ["", "## Canary steps", "", "No canary step ran."]
    header = ("step", "run", "batches", "action", *_COLUMNS)
    lines = ["", "## Canary steps", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]  # fmt: skip
    for step in steps:
        lead = (f"{step.weight}%", str(step.attempt), str(step.batches), step.action)
        rows = step.table or [{"check": step.outcome, "outcome": step.outcome}]
        for row in rows:
            cells = (*lead, *(_fmt(row.get(c)) for c in _COLUMNS))
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Step decisions:", ""]
    lines += [f"- {s.weight}% run {s.attempt}: **{s.action}** after {s.requests} requests, "
              f"{s.elapsed_s:.0f} s" + (f" ({s.paused} in {s.paused_batches} of {s.batches} "
              "batches)" if s.paused else "") + f" — {s.reason}" for s in steps]  # fmt: skip
    return lines


def _manual_section(outcome: ReleaseOutcome) -> list[str]:
    """Who did what by hand, when, at which step, with the step's estimates then."""
    if not outcome.manual:
        return []
    lines = ["", "## Manual actions", ""]
    for done in outcome.manual:
        lines.append(f"- **{done.action}** by {done.by} at {done.at}"
                     + (f", step {done.weight}% after {done.requests} requests"
                        if done.weight is not None else "")
                     + (f" — {done.note}" if done.note else ""))  # fmt: skip
        lines += [f"  - {row.get('check')}: {row.get('outcome')}, canary "
                  f"{_fmt(row.get('canary'))} vs stable {_fmt(row.get('stable'))}, effect "
                  f"{_fmt(row.get('effect'))} (CS {_fmt(row.get('ci'))}), n "
                  f"{_fmt(row.get('n_canary'))}/{_fmt(row.get('n_stable'))}"
                  for row in done.evidence]  # fmt: skip
    return lines


def _blast_section(outcome: ReleaseOutcome) -> list[str]:
    blast = outcome.blast_radius
    if blast is None:
        return []
    unknown = "not measured"
    return ["", "## Blast radius", "", "| measure | value |", "|---|---|",
            f"| user requests the canary answered | {_fmt(blast.user_requests) or unknown} |",
            f"| of those failed | {_fmt(blast.user_failed) or unknown} |",
            f"| of those wrong | {_fmt(blast.user_wrong) or unknown} |",
            f"| all requests the canary answered | {blast.canary_requests} |",
            f"| seconds from first request to the decision | {blast.exposed_s:.1f} |",
            f"| seconds from first request to 0 % weight | "
            f"{_fmt(blast.seconds_to_zero) or unknown} |"]  # fmt: skip


def step_rows(step: StepRecord) -> list[dict[str, Any]]:
    """The table artifact of one step run: its checks, with the step's action."""
    rows = step.table or [{"check": "hard_failure", "outcome": step.outcome}]
    return [{"weight": step.weight, "run": step.attempt, "action": step.action, **row}
            for row in rows]  # fmt: skip


_MLFLOW_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./ :]")


def metric_name(name: str) -> str:
    """`name` with every character MLflow refuses in a metric key replaced by `_`."""
    return _MLFLOW_UNSAFE.sub("_", name)


def metrics(outcome: ReleaseOutcome) -> dict[str, float]:
    """Flat numeric metrics for an MLflow run: offline metrics and each check's numbers."""
    return {metric_name(k): v for k, v in _raw_metrics(outcome).items()}


def _raw_metrics(outcome: ReleaseOutcome) -> dict[str, float]:
    out = {f"offline.{k}": v for k, v in outcome.metrics.items()}
    out.update({f"time.{k}": v for k, v in outcome.timings.items()})
    blast = outcome.blast_radius
    if blast is not None:
        for key, value in blast.model_dump().items():
            if isinstance(value, int | float):
                out[f"blast.{key}"] = value
    for step in outcome.steps:
        for row in step.table:
            for col in _NUMERIC:
                value = row.get(col)
                if isinstance(value, int | float) and math.isfinite(value):
                    out[f"step{step.weight}.run{step.attempt}.{row['check']}.{col}"] = value
    return out


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")
