"""What every benchmark shares: the run context, result rows, and the statistics they print.

    ctx = Context(quick=True, work=Path(tmp))
    ctx.emit(Row("router", "added p50 latency", spread([0.4, 0.5, 0.6], "ms"), ...))
    ctx.facts["router_rps"] = 140.0       # a number a later benchmark reuses (same run)

A Row is one line of the RESULTS.md table: canaryflow's number, the comparison it was
measured against in the same run (or a documented figure, said so), the ratio, the goal and
whether it is met. Rows are printed as they are made.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("bench", "measure", "canaryflow", "comparison", "ratio", "goal", "met", "notes")


@dataclass(frozen=True)
class Row:
    """One measured line: `value` vs `comparison`, with the `ratio`, `goal` and verdict."""

    bench: str
    measure: str
    value: str
    comparison: str = "—"
    ratio: str = "—"
    goal: str = "—"
    met: str = "—"
    notes: str = ""

    def cells(self) -> list[str]:
        return [
            self.bench,
            self.measure,
            self.value,
            self.comparison,
            self.ratio,
            self.goal,
            self.met,
            self.notes,
        ]

    def markdown(self) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in self.cells()) + " |"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Context:
    """One `python -m bench` run: mode, scratch space, shared facts, the rows so far."""

    quick: bool
    work: Path
    started: float = field(default_factory=time.monotonic)
    budget_s: float = 30 * 60
    facts: dict[str, float] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    shared: dict[str, Any] = field(default_factory=dict)

    def repeats(self, full: int) -> int:
        """How often to repeat a measurement: `full` times, once in quick mode."""
        return 1 if self.quick else full

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def emit(self, row: Row) -> None:
        self.rows.append(row)
        print(row.markdown(), flush=True)

    def note(self, text: str) -> None:
        print(f"  · {text}", flush=True)

    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)


# -- statistics ----------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation; nan for no values."""
    return float(np.quantile(np.asarray(values, dtype=float), q)) if values else float("nan")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def num(value: float, digits: int = 3) -> str:
    """A number with `digits` significant digits, no exponent for everyday sizes."""
    if value != value:  # nan
        return "n/a"
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"
    return f"{value:.{digits}g}"


def spread(values: Sequence[float], unit: str = "", digits: int = 3) -> str:
    """`median unit (min–max)` over repeats; just the value for a single run."""
    suffix = f" {unit}" if unit else ""
    if len(values) == 1:
        return f"{num(values[0], digits)}{suffix}"
    lo, hi = min(values), max(values)
    return f"{num(median(values), digits)}{suffix} ({num(lo, digits)}–{num(hi, digits)})"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


# -- the machine ---------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """`N cores, CPU model, RAM` of this machine."""
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    return f"{os.cpu_count()} cores, {cpu_model()}{mem}"


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    """Run the calling thread (and threads it starts) on `cpus`; None: leave it alone."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def other_cpus(cpuset: str) -> set[int] | None:
    """This process's CPUs except those in a Docker cpuset string like '0' or '0-1'."""
    taken: set[int] = set()
    for part in cpuset.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            taken |= set(range(int(lo), int(hi) + 1))
        elif part.strip():
            taken.add(int(part))
    rest = os.sched_getaffinity(0) - taken
    return rest or None
