"""Pictures of a release's record: one PNG per canary step run, one weight timeline.

    files, notes = draw_all(steps, verdict, out_dir, margins_from_policy(policy))
    # files: {"pictures/step-50-0.png": Path, ..., "pictures/weights.png": Path}
    # notes: one line per picture that could not be drawn (never an exception)

A step picture has two panels, drawn from the step's check rows (StepVerdict.table()):
1. latency / ttft / itl quantiles: the ratio canary/stable with its confidence sequence as
   an error bar, colored by outcome, with the pass and fail margins as lines;
2. error rate and quality: the difference canary - stable (points) with its interval.
Rows without an estimate (inconclusive with no data yet) are listed by name on the axis
with an "n/a" mark, never dropped silently. The timeline is the canary weight over the
summed step time with each step's decision (advance / retry / rollback) and the release's
end (promote to 100 %, rollback to 0 %) marked.

Plain data in, files out: no Prefect, no MLflow here (tasks/report.py logs the files).
Drawn with matplotlib's Agg backend (no display); figures are closed after saving.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.controller.record import StepRecord

if TYPE_CHECKING:
    from validation.analysis.policy import CanaryPolicy

LATENCY_KINDS = ("latency", "ttft", "itl")
RATE_KINDS = ("error_rate", "quality")
SIZE_IN = (10.0, 4.5)
DPI = 100
_COLOR = {"pass": "tab:green", "fail": "tab:red", "inconclusive": "tab:orange"}
_MARK = {"advance": ("^", "tab:green"), "retry": ("o", "tab:orange"),
         "rollback": ("v", "tab:red"), "promote": ("*", "tab:blue")}  # fmt: skip


@dataclass(frozen=True)
class Margin:
    """Where a check passes (estimate's bound inside `pass_at`) and fails (beyond `fail_at`),
    in the row's own unit: a ratio for latency kinds, a difference for rates."""

    pass_at: float
    fail_at: float


def margins_from_policy(policy: CanaryPolicy) -> dict[str, Margin]:
    """The pass/fail margins of each check kind, as the pictures draw them."""
    out = {kind: Margin(getattr(policy, kind).pass_limit, getattr(policy, kind).max_ratio)
           for kind in LATENCY_KINDS}  # fmt: skip
    out["error_rate"] = Margin(policy.error_rate.pass_limit, policy.error_rate.max_increase)
    out["quality"] = Margin(-policy.quality.pass_limit, -policy.quality.max_drop)
    return out


def step_name(step: StepRecord) -> str:
    """`step-<weight>-<attempt>`: the name of a step run's files in the record."""
    return f"step-{step.weight}-{step.attempt}"


def draw_all(
    steps: Sequence[StepRecord],
    verdict: str,
    out_dir: Path,
    margins: Mapping[str, Margin] | None = None,
) -> tuple[dict[str, Path], list[str]]:
    """Every picture of a release: ({artifact path: file}, notes on pictures not drawn)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    notes: list[str] = []
    jobs: list[tuple[str, Any]] = [
        (f"{step_name(s)}.png", lambda p, s=s: step_png(s, p, margins)) for s in steps
    ]
    if steps:
        jobs.append(("weights.png", lambda p: timeline_png(steps, verdict, p)))
    for name, draw in jobs:
        path = out_dir / name
        try:
            draw(path)
        except Exception as exc:  # a picture is evidence, not the decision: note it, go on
            notes.append(f"picture {name} was not drawn: {type(exc).__name__}: {exc}")
            continue
        files[f"pictures/{name}"] = path
    return files, notes


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _kind(check: str) -> str:
    return check.split(".", 1)[0]


def _figure(ncols: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot's first import
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=SIZE_IN, dpi=DPI, squeeze=False)
    return fig, axes[0]


def _save(fig: Any, path: Path) -> None:
    from matplotlib import pyplot as plt

    try:
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def step_png(step: StepRecord, path: Path, margins: Mapping[str, Margin] | None = None) -> Path:
    """The two-panel picture of one step run (see the module doc); `path`."""
    fig, (left, right) = _figure(2)
    fig.suptitle(f"{step.weight}% canary, run {step.attempt}: {step.action} "
                 f"({step.outcome}) after {step.requests} requests, {step.elapsed_s:.0f} s",
                 fontsize=10)  # fmt: skip
    rows = [r for r in step.table if isinstance(r.get("check"), str)]
    _panel(left, [r for r in rows if _kind(r["check"]) in LATENCY_KINDS], margins,
           title="latency quantiles: canary / stable (CS)", neutral=1.0)  # fmt: skip
    _panel(right, [r for r in rows if _kind(r["check"]) in RATE_KINDS], margins,
           title="error rate, quality: canary - stable (CS)", neutral=0.0)  # fmt: skip
    _save(fig, path)
    return path


def _panel(
    ax: Any, rows: list[dict[str, Any]], margins: Mapping[str, Margin] | None,
    *, title: str, neutral: float,
) -> None:  # fmt: skip
    ax.set_title(title, fontsize=9)
    ax.axhline(neutral, color="grey", linewidth=0.8)
    if not rows:
        ax.text(0.5, 0.5, "no such check in this step", ha="center", va="center",
                transform=ax.transAxes, color="grey")  # fmt: skip
        ax.set_xticks([])
        return
    drawn: set[str] = set()
    for x, row in enumerate(rows):
        color = _COLOR.get(str(row.get("outcome")), "tab:grey")
        effect, low, high = (_num(row.get(k)) for k in ("effect", "ci_low", "ci_high"))
        if effect is None:
            ax.plot([x], [neutral], marker="x", color=color, linestyle="none")
            ax.annotate("n/a", (x, neutral), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, color=color)  # fmt: skip
            continue
        lo = effect if low is None else min(low, effect)
        hi = effect if high is None else max(high, effect)
        ax.errorbar([x], [effect], yerr=[[effect - lo], [hi - effect]], fmt="o",
                    color=color, capsize=4)  # fmt: skip
        unbounded = [side for side, key, sign in (("upper", "ci_high", 1), ("lower", "ci_low", -1))
                     if _num(row.get(key)) is None and row.get(key) is not None
                     and sign * float(row[key]) > 0]  # fmt: skip
        if unbounded:  # an infinite CS bound: say so, the bar cannot show it
            ax.annotate(
                f"CS {'/'.join(unbounded)}: ∞",
                (x, effect),
                textcoords="offset points",
                xytext=(6, -3),
                fontsize=7,
                color=color,
            )
        kind = _kind(row["check"])
        margin = (margins or {}).get(kind)
        if margin is not None:
            lines = [("pass", margin.pass_at, "tab:green", "dashed"),
                     ("fail", margin.fail_at, "tab:red", "dotted")]  # fmt: skip
            if margin.pass_at == margin.fail_at:  # one line, not two drawn over each other
                lines = [("pass/fail", margin.pass_at, "tab:purple", "dashed")]
            for key, at, color, style in lines:
                ax.hlines([at], x - 0.35, x + 0.35, colors=color, linestyles=style,
                          label=None if key in drawn else f"{key} margin")  # fmt: skip
                drawn.add(key)
    ax.set_xticks(range(len(rows)))
    # One line each for the check, its outcome and n: on one line, seven latency checks'
    # labels ran into each other (seen in the demo's record).
    ax.set_xticklabels([f"{r['check']}\n{r.get('outcome', '')}\nn={r.get('n_canary', '?')}"
                        for r in rows], fontsize=6.5)  # fmt: skip
    ax.set_xlim(-0.6, len(rows) - 0.4)
    _clip(ax, rows, margins, neutral)
    if drawn:
        ax.legend(fontsize=7, loc="best")


def _clip(
    ax: Any, rows: list[dict[str, Any]], margins: Mapping[str, Margin] | None, neutral: float
) -> None:
    """Y limits from the finite values only: an infinite CS bound must not flatten the rest."""
    values = [neutral]
    for row in rows:
        values += [
            v for k in ("effect", "ci_low", "ci_high") if (v := _num(row.get(k))) is not None
        ]
        margin = (margins or {}).get(_kind(row["check"]))
        if margin is not None:
            values += [margin.pass_at, margin.fail_at]
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or 0.1
    ax.set_ylim(low - pad, high + pad)


def timeline_png(steps: Sequence[StepRecord], verdict: str, path: Path) -> Path:
    """The canary weight over the summed step time, decisions marked; `path`."""
    fig, (ax,) = _figure(1)
    t, times, weights = 0.0, [0.0], [0.0]
    marks: list[tuple[float, float, str]] = []
    for step in steps:
        elapsed = max(0.0, _num(step.elapsed_s) or 0.0)
        times += [t, t + elapsed]
        weights += [float(step.weight), float(step.weight)]
        t += elapsed
        marks.append((t, float(step.weight), step.action))
    end = {"promoted": (100.0, "promote"), "rolled_back": (0.0, "rollback")}.get(verdict)
    if end is not None:
        times.append(t)
        weights.append(end[0])
        if end[1] == "promote":
            marks.append((t, end[0], "promote"))
    ax.step(times, weights, where="post", color="tab:blue", linewidth=1.5)
    labelled: set[str] = set()
    for x, y, action in marks:
        marker, color = _MARK.get(action, ("s", "tab:grey"))
        ax.plot([x], [y], marker=marker, color=color, markersize=10, linestyle="none",
                label=None if action in labelled else action)  # fmt: skip
        labelled.add(action)
    ax.set_xlabel("seconds of canary analysis (steps' elapsed time, summed)")
    ax.set_ylabel("canary weight (%)")
    ax.set_ylim(-5, 105)
    ax.set_title(f"canary weight timeline: {verdict}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)
    return path
