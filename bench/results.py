"""bench/RESULTS.md and bench/results.json: the rows of the latest run of each benchmark.

results.json keeps, per benchmark, the rows and when/how they were measured, so a run with
`--only` updates its benchmarks and keeps the others' last numbers; RESULTS.md is written
from it as one table with the run details above it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import COLUMNS, Row, load_average, machine

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_JSON = HERE / "results.json"

INTRO = """# canaryflow benchmarks

Written by `python -m bench` (`make bench`); see bench/__init__.py for what each one does.
Every number is next to its comparison **measured in the same run** (or a documented figure,
said so in the row); repeated measurements show `median (min–max)`. Benchmarks are not
tests: nothing here is asserted in the test suite.
"""


def save(
    rows: list[Row], benches: list[str], mode: str, notes: dict[str, str], elapsed_s: float
) -> None:
    """Merge this run's rows into results.json and rewrite RESULTS.md."""
    data = _load()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for bench in benches:
        data["benches"][bench] = {
            "measured": stamp,
            "mode": mode,
            "machine": machine(),
            "load_average": load_average(),
            "rows": [r.as_dict() for r in rows if r.bench == bench],
            "notes": notes.get(bench, ""),
        }
    data["last_run"] = {
        "at": stamp,
        "mode": mode,
        "benches": benches,
        "elapsed_s": round(elapsed_s),
    }
    RESULTS_JSON.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    RESULTS_MD.write_text(render(data))


def _load() -> dict[str, Any]:
    if RESULTS_JSON.exists():
        try:
            data: dict[str, Any] = json.loads(RESULTS_JSON.read_text())
            data.setdefault("benches", {})
            return data
        except ValueError:
            pass
    return {"benches": {}}


def render(data: dict[str, Any]) -> str:
    benches: dict[str, Any] = data["benches"]
    lines = [INTRO]
    lines.append("| benchmark | measured (UTC) | mode | machine | load avg at end |")
    lines.append("|---|---|---|---|---|")
    for name, b in benches.items():
        lines.append(
            f"| {name} | {b['measured']} | {b['mode']} | {b['machine']} | {b['load_average']} |"
        )
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for b in benches.values():
        lines += [Row(**r).markdown() for r in b["rows"]]
    notes = [(name, b["notes"]) for name, b in benches.items() if b.get("notes")]
    if notes:
        lines += ["", "## What was measured and how", ""]
        lines += [f"- **{name}**: {text}" for name, text in notes]
    return "\n".join(lines) + "\n"
