"""Drift check cost: capture JSONL files → verdict, for 10k, 100k and 1M captured requests.

    python -m bench --only drift [--quick]
    python -m bench.drift DIR GOLDEN NOW      # one measurement (what the benchmark runs)

The files are made like the serving middleware writes them (serving/capture.build_record
of seeded arithmetic chat exchanges; 20 % load-test requests, 1 % 5xx, 100k records a file
like a rotated capture). Measured is the drift-check flow's path, in a fresh process per
measurement so peak memory is its own: infra/monitor/drift_watch.capture_window (reads
every file: validation/metrics/capture_log.read_capture) → judge (validation/drift
detect_drift: Evidently, HTML report written) against the demo model's golden set.
Peak memory is the process's max RSS minus its RSS after the imports.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Context, Row, median, num, spread
from tests.fixtures.models import trained

NAME = "drift"
PER_FILE = 100_000
METHOD = (
    "measured: capture_window + judge (the drift-check flow's path, Evidently HTML included) "
    "in a fresh process per run on generated capture JSONL in the middleware's format; "
    "detect_drift samples 50,000 rows a side, so above that only reading grows."
)


def run(ctx: Context) -> None:
    sizes = ctx.pick((1_000, 10_000), (10_000, 100_000, 1_000_000))
    golden = trained() / "golden.jsonl"
    now = time.time()
    medians: dict[int, tuple[float, float]] = {}
    for n in sizes:
        folder = ctx.work / f"capture-{n}"
        write_capture(folder, n, now)
        reps = ctx.repeats(2 if n >= 1_000_000 else 3)
        found = [_measure(folder, golden, now) for _ in range(reps)]
        for f in found:
            ctx.note(
                f"{n:,}: {f['seconds']:.1f} s (read {f['read_s']:.1f} s), "
                f"peak +{f['peak_mb']:.0f} MB, {f['status']}, {f['n_used']:,} used"
            )
        medians[n] = (median([f["seconds"] for f in found]), median([f["peak_mb"] for f in found]))
        _report(ctx, n, found, medians)


def _report(
    ctx: Context, n: int, found: list[dict[str, Any]], medians: dict[int, tuple[float, float]]
) -> None:
    smaller = [m for m in medians if m < n]
    growth = "—"
    if smaller:
        prev = max(smaller)
        t0, m0 = medians[prev]
        t1, m1 = medians[n]
        growth = f"time {t1 / t0:.2f}×, memory {m1 / m0:.2f}× per {n // prev}× requests"
    ctx.emit(
        Row(
            NAME,
            f"drift check, {n:,} captured requests",
            spread([f["seconds"] for f in found], "s")
            + ", peak +"
            + spread([f["peak_mb"] for f in found], "MB"),
            f"of which reading the files {spread([f['read_s'] for f in found], 's')}",
            growth,
            "—",
            "—",
            f"{found[0]['n_used']:,} live requests judged; verdict {found[0]['status']}; "
            f"base RSS {num(found[0]['base_mb'])} MB",
        )
    )


def write_capture(folder: Path, n: int, now: float) -> None:
    """`n` capture records over the hour before `now`, PER_FILE records a file."""
    from serving.capture import Exchange, build_record
    from validation.golden import TaskSpec, sample

    folder.mkdir(parents=True, exist_ok=True)
    pool = []
    for i, ex in enumerate(sample(TaskSpec(), 2000, seed=7)):
        request = {
            "model": "tiny-chat",
            "messages": [{"role": "user", "content": ex.prompt}],
            "max_tokens": 8,
            "temperature": 0,
        }
        answer = ex.answer if i % 10 else str(int(ex.answer) + 1)
        response = {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": answer},
                }
            ]
        }
        exchange = Exchange(
            request_id="x",
            variant="stable",
            model_version="1",
            method="POST",
            path="/v1/chat/completions",
            started_at=now,
            request_body=json.dumps(request).encode(),
            status=200,
            response_body=json.dumps(response).encode(),
            latency_s=0.05,
        )
        pool.append(build_record(exchange, lambda s: s))
    for start in range(0, n, PER_FILE):
        count = min(PER_FILE, n - start)
        with (folder / f"capture-stable-bench-{start // PER_FILE}.jsonl").open("w") as f:
            f.writelines(_line(pool, i, n, now) for i in range(start, start + count))


def _line(pool: list[dict[str, Any]], i: int, n: int, now: float) -> str:
    from datetime import UTC, datetime

    rec = dict(pool[i % len(pool)])
    rec["ts"] = datetime.fromtimestamp(now - 3500 + 3400 * i / n, UTC).isoformat()
    rec["request_id"] = f"cf-load-{i:x}" if i % 5 == 0 else f"req-{i:x}"
    rec["variant"] = "canary" if i % 10 == 3 else "stable"
    if i % 100 == 1:
        rec["status"], rec["completion"] = 500, None
    return json.dumps(rec) + "\n"


def _measure(folder: Path, golden: Path, now: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.drift", str(folder), str(golden), repr(now)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"drift worker failed: {done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(folder: Path, golden: Path, now: float) -> dict[str, Any]:
    """One drift check over `folder`, timed, in this (fresh) process."""
    import evidently  # noqa: F401  (import cost and memory are not the check's)
    import sklearn  # type: ignore[import-untyped]  # noqa: F401

    from infra.monitor.drift_watch import DriftCheckSpec, capture_window, judge
    from validation.drift import frame_from_examples
    from validation.evaluation.spec import EvaluationSpec
    from validation.golden import read_jsonl

    base = _rss_mb()
    spec = DriftCheckSpec(
        model_name="bench-model", window_s=3600, evaluation=EvaluationSpec(path=str(golden))
    )
    start = time.perf_counter()
    window = capture_window(folder, spec.window_s, now=now)
    read_s = time.perf_counter() - start
    reference = frame_from_examples(read_jsonl(golden))
    verdict = judge(window, reference, spec, html_path=folder.parent / f"{folder.name}.html")
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "read_s": read_s,
        "peak_mb": _rss_mb() - base,
        "base_mb": base,
        "status": verdict.status,
        "n_seen": window.n_seen,
        "n_used": len(window.frame),
    }


if __name__ == "__main__":
    print(json.dumps(worker(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))))
