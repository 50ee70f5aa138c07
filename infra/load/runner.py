"""Send one step's load through the router with Locust in a subprocess; summarize per variant.

    result = run_load("http://127.0.0.1:8080", api_key, "tiny-chat", LoadProfile(),
                      Path("runs/r1/step-10"), requests=400, timeout_s=120)
    result.variants["canary"].count, result.variants["canary"].p95_ms, result.html

How a run ends: after `requests` requests (the analysis sizes them, e.g.
`validation.analysis.policy.samples_needed`) the locustfile quits Locust itself;
`profile.max_duration_s` (Locust `-t`) bounds the run when the budget is not reached; and
`timeout_s` is the hard limit: past it the Locust process group gets SIGTERM, then SIGKILL
(Locust can ignore SIGTERM), and LoadTimeoutError is raised.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field

from infra.load import (
    LoadTimeoutError,
    LocustFailedError,
    LocustMissingError,
    NoRequestsCompletedError,
    RouterUnreachableError,
)
from infra.load.job import API_KEY_ENV, JOB_ENV, LoadJob
from infra.load.prompts import PromptSource, load_prompts, write_prompts
from infra.load.records import VariantSummary, read_records, summarize

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
_REPO_ROOT = Path(__file__).resolve().parents[2]
_KILL_GRACE_S = 5.0
_LOG_TAIL_CHARS = 2000


class LoadProfile(BaseModel):
    """How one canary step's load is sent (the `load` part of a ReleaseSpec)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    users: int = Field(
        4, ge=1, le=10_000, description="Concurrent Locust users; each sends its next "
        "request as soon as the previous one is answered (no think time).",
    )  # fmt: skip
    spawn_rate: float = Field(4.0, gt=0, description="Users started per second.")
    prompts: PromptSource = Field(
        default_factory=PromptSource, description="Where prompts come from: golden, replay "
        "(captured traffic) or synthetic.",
    )  # fmt: skip
    max_tokens: int = Field(16, ge=1, le=32_768, description="max_tokens of every request.")
    stream: bool = Field(
        True, description="Request SSE streams, so TTFT (time to the first chunk) is measured."
    )
    requests: int | None = Field(
        None, ge=1, description="Request budget of one run; run_load(requests=...) overrides "
        "it. None: the run lasts max_duration_s.",
    )  # fmt: skip
    max_duration_s: float = Field(
        300.0, gt=0, le=86_400, description="Upper bound of one run (Locust -t), budget or not."
    )
    request_timeout_s: float = Field(
        60.0, gt=0, description="Per-request connect and read timeout; a timeout is a failure."
    )


class LoadResult(BaseModel):
    """Where a run's outputs are and what each variant got."""

    model_config = ConfigDict(frozen=True)

    out_dir: Path = Field(description="Directory holding every output below.")
    results: Path = Field(description="One JSONL record per request (infra/load/records.py).")
    stats_csv: Path = Field(description="Locust per-entry stats; one `chat [variant]` row each.")
    failures_csv: Path = Field(description="Locust failures per entry and error.")
    history_csv: Path = Field(description="Locust aggregated stats over time.")
    stats_json: Path = Field(description="Locust final stats (--json-file).")
    html: Path = Field(description="Locust HTML report.")
    log: Path = Field(description="Locust's stdout and stderr.")
    requested: int | None = Field(description="The request budget (None: time-bounded).")
    completed: int = Field(description="Requests recorded (ok or not).")
    budget_reached: bool = Field(description="False when -t ended the run before the budget.")
    duration_s: float = Field(description="Wall time of the Locust process, startup included.")
    variants: dict[str, VariantSummary] = Field(description="Per-variant summary.")


def run_load(
    router_url: str,
    api_key: str,
    served_model_name: str,
    profile: LoadProfile,
    out_dir: Path,
    *,
    requests: int | None = None,
    timeout_s: float | None = None,
    locust_command: Sequence[str] | None = None,
    probe_timeout_s: float = 5.0,
) -> LoadResult:
    """Run Locust against `router_url` and return its outputs and per-variant summary.

    `requests` (else `profile.requests`) is the request budget; `timeout_s` (default
    `max_duration_s + 60`) the hard limit; `locust_command` how to start Locust (default
    `sys.executable -m locust`). Raises a LoadError subclass (see infra/load/__init__.py).
    """
    budget = requests if requests is not None else profile.requests
    if budget is not None and budget < 1:
        raise ValueError(f"requests must be >= 1, got {budget}")
    hard_limit = timeout_s if timeout_s is not None else profile.max_duration_s + 60
    command = list(locust_command or [sys.executable, "-m", "locust"])
    _check_locust(command)
    prompts = load_prompts(profile.prompts)
    router_url = router_url.rstrip("/")
    probe_router(router_url, probe_timeout_s)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = _Paths(out_dir)
    for stale in paths.outputs():  # an earlier run's files must not pass for this run's
        stale.unlink(missing_ok=True)
    job = LoadJob(
        model=served_model_name,
        prompts_file=write_prompts(prompts, paths.prompts),
        results_file=paths.results,
        requests=budget,
        max_tokens=profile.max_tokens,
        stream=profile.stream,
        request_timeout_s=profile.request_timeout_s,
        seed=secrets.randbits(32),
    )
    paths.job.write_text(job.model_dump_json(indent=2), encoding="utf-8")
    argv = [
        *command, "-f", str(LOCUSTFILE), "--headless",
        "-u", str(profile.users), "-r", str(profile.spawn_rate),
        "--host", router_url, "-t", f"{math.ceil(profile.max_duration_s)}s",
        "--csv", str(paths.csv_prefix), "--html", str(paths.html),
        "--json-file", str(paths.json_prefix),
        "--only-summary", "--exit-code-on-error", "0",
    ]  # fmt: skip
    env = _locust_env(paths.job, api_key)
    duration = _run(argv, env, paths.log, hard_limit)

    records = read_records(paths.results)
    answered = [r for r in records if r["status"] > 0]
    if not answered:
        first = records[0]["error"] if records else "no request was sent"
        raise NoRequestsCompletedError(
            f"Locust sent {len(records)} requests to {router_url} and none got an HTTP "
            f"response (first error: {first}); is the router forwarding to a live backend? "
            f"Log: {paths.log}"
        )
    return LoadResult(
        out_dir=out_dir,
        results=paths.results,
        stats_csv=paths.stats_csv,
        failures_csv=paths.failures_csv,
        history_csv=paths.history_csv,
        stats_json=paths.stats_json,
        html=paths.html,
        log=paths.log,
        requested=budget,
        completed=len(records),
        budget_reached=budget is not None and len(records) >= budget,
        duration_s=round(duration, 3),
        variants=summarize(records),
    )


def probe_router(router_url: str, timeout_s: float) -> int:
    """The HTTP status of GET /v1/models (any status proves the router answers).

    Retries until `timeout_s` so a router started a moment ago is not a failure; raises
    RouterUnreachableError when no HTTP response came. No credentials are sent.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(f"{router_url}/v1/models", timeout=min(timeout_s, 5.0)).status_code
        except httpx.HTTPError as exc:
            if time.monotonic() >= deadline:
                raise RouterUnreachableError(
                    f"router {router_url} did not answer GET /v1/models within {timeout_s:g}s "
                    f"({type(exc).__name__}: {exc}); is the router running and the URL right?"
                ) from exc
            time.sleep(0.2)


class _Paths:
    def __init__(self, out_dir: Path) -> None:
        self.prompts = out_dir / "prompts.jsonl"
        self.job = out_dir / "load-job.json"
        self.results = out_dir / "requests.jsonl"
        self.csv_prefix = out_dir / "locust"
        self.stats_csv = out_dir / "locust_stats.csv"
        self.failures_csv = out_dir / "locust_failures.csv"
        self.history_csv = out_dir / "locust_stats_history.csv"
        self.json_prefix = out_dir / "locust"  # Locust appends ".json"
        self.stats_json = out_dir / "locust.json"
        self.html = out_dir / "locust.html"
        self.log = out_dir / "locust.log"

    def outputs(self) -> list[Path]:
        return [
            self.results, self.stats_csv, self.failures_csv, self.history_csv,
            self.stats_json, self.html, self.log,
        ]  # fmt: skip


def _check_locust(command: list[str]) -> None:
    if command[:1] == [sys.executable] and command[1:3] == ["-m", "locust"]:
        found = find_spec("locust") is not None
    else:
        found = Path(command[0]).exists() or shutil.which(command[0]) is not None
    if not found:
        raise LocustMissingError(
            f"cannot run Locust as {' '.join(command)!r}: install it into the pipeline "
            "environment (`make setup`, or pip install 'locust>=2.47,<3')"
        )


def _locust_env(job_file: Path, api_key: str) -> dict[str, str]:
    # LOCUST_* variables would silently change Locust's options: keep only ours.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    pythonpath = [str(_REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONUNBUFFERED": "1",
            JOB_ENV: str(job_file),
            API_KEY_ENV: api_key,
        }
    )
    return env


def _run(argv: list[str], env: dict[str, str], log: Path, timeout_s: float) -> float:
    """Runs Locust in its own process group; returns its wall time. Kills the group on overrun."""
    start = time.monotonic()
    with log.open("wb") as log_file:
        try:
            proc = subprocess.Popen(
                argv, cwd=_REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise LocustMissingError(f"cannot start Locust ({argv[0]}): {exc}") from exc
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise LoadTimeoutError(
                f"Locust ran past the hard timeout of {timeout_s:g}s and was killed; partial "
                f"results may be in {log.parent}. Raise timeout_s or lower the request budget. "
                f"Log tail: {_tail(log)}"
            ) from None
        finally:
            if proc.poll() is None:  # interrupted (e.g. KeyboardInterrupt): leave nothing behind
                kill_group(proc)
    if code != 0:
        raise LocustFailedError(f"Locust exited with {code}; log {log}: {_tail(log)}")
    return time.monotonic() - start


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = _KILL_GRACE_S) -> None:
    """SIGTERM a child's process group, then SIGKILL after `grace_s` (Locust may ignore
    SIGTERM). The child must have been started with start_new_session=True."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(log: Path) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return text[-_LOG_TAIL_CHARS:].strip()
