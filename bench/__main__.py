"""`python -m bench [--only NAME[,NAME]] [--quick]`: run the benchmarks, write RESULTS.md.

The order is fixed so that later benchmarks reuse what earlier ones measured in the same
run (the router's RPS feeds the rollback simulation; the real promote/rollback durations
too) and so that no vLLM container is running while a CPU-bound benchmark measures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

from bench import (
    aa_placement,
    drift,
    lead_time,
    loadgen,
    offline_scoring,
    rollback,
    router,
    sequential,
    serving,
    step_drift,
    transitions,
)
from bench.common import COLUMNS, Context, Row, load_average, machine
from bench.results import RESULTS_MD, save
from bench.stack import close_vllm_stack

BENCHES: dict[str, ModuleType] = {
    "drift": drift,
    "step_drift": step_drift,
    "offline_scoring": offline_scoring,
    "serving": serving,
    "router": router,
    "transitions": transitions,
    "aa_placement": aa_placement,  # its own containers, after the shared stack is closed
    "loadgen": loadgen,
    "rollback": rollback,
    "lead_time": lead_time,
    "sequential": sequential,
}
USES_VLLM_STACK = {"serving", "router", "transitions"}
# what a benchmark needs left of the time budget to start in a full run (s; measured here)
MIN_LEFT_S = {"drift": 150, "step_drift": 240, "offline_scoring": 300, "serving": 240,
              "router": 270, "transitions": 210, "loadgen": 90,
              "rollback": 60, "lead_time": 480, "sequential": 600,
              "aa_placement": 720}  # fmt: skip


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default="", help=f"comma-separated: {', '.join(BENCHES)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--budget-min", type=float, default=30, help="time budget (minutes)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHES)}")
    args.names = [n for n in BENCHES if n in names]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    mode = "quick" if args.quick else "full"
    print(f"canaryflow bench ({mode}): {', '.join(args.names)}")
    print(f"machine: {machine()}; load average {load_average()}")
    print("| " + " | ".join(COLUMNS) + " |", flush=True)
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="canaryflow-bench-") as tmp:
        ctx = Context(quick=args.quick, work=Path(tmp), budget_s=args.budget_min * 60)
        with ctx.resources:
            for name in args.names:
                if not _run_one(ctx, name):
                    failed.append(name)
                if name in USES_VLLM_STACK and not USES_VLLM_STACK & set(_after(args.names, name)):
                    close_vllm_stack(ctx)
        elapsed = time.monotonic() - ctx.started
        notes = {n: str(getattr(BENCHES[n], "METHOD", "")) for n in args.names}
        save(ctx.rows, args.names, mode, notes, elapsed)
    print(
        f"wrote {RESULTS_MD} ({elapsed / 60:.1f} min)" + (f"; FAILED: {failed}" if failed else "")
    )
    return 1 if failed else 0


def _after(names: list[str], name: str) -> list[str]:
    return names[names.index(name) + 1 :]


def _run_one(ctx: Context, name: str) -> bool:
    need = MIN_LEFT_S.get(name, 0)
    if not ctx.quick and ctx.left_s() < need:
        ctx.emit(
            Row(
                name,
                "skipped",
                "—",
                notes=f"{ctx.left_s() / 60:.0f} min of the budget left, needs {need / 60:.0f}",
            )
        )
        return True
    print(f"\n## {name} (t+{(time.monotonic() - ctx.started) / 60:.1f} min)", flush=True)
    start = time.monotonic()
    try:
        BENCHES[name].run(ctx)
    except Exception as exc:  # one broken benchmark must not lose the others' numbers
        traceback.print_exc()
        ctx.emit(Row(name, "error", "—", notes=f"{type(exc).__name__}: {str(exc)[:200]}"))
        return False
    print(f"  · {name} took {time.monotonic() - start:.0f} s", flush=True)
    return True


if __name__ == "__main__":
    sys.exit(main())
