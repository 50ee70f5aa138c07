"""A small client of the Prefect server for the demo and the e2e tests: runs and artifacts.

    api = PrefectApi("http://127.0.0.1:4200/api")
    run_id = api.run_deployment("release/release", {"spec": {"model": "models:/tiny-chat/2"}})
    run = api.wait(run_id, timeout_s=1800)          # the flow run once it is final
    api.markdown(run_id, "release-tiny-chat")       # its decision record
    api.wait_for_new_run("retrain/retrain", after=t0)   # a run a trigger created

Runs are created with the `prefect deployment run` CLI — exactly what a person types — and
read back over the REST API (flow_runs, deployments, artifacts), which keeps this module
free of Prefect's client settings (they are read once per process).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.errors import CanaryflowError

PREFECT = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "prefect"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
_UUID = re.compile(r"UUID:\s*([0-9a-f-]{36})")
RETRY_CODES = {429, 502, 503}
RETRIES = 5  # 0.5 + 1 + 2 + 4 + 8 s at most, as PREFECT_CLIENT_MAX_RETRIES' default


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:  # an HTTP date: use the backoff
        return None


class PrefectApiError(CanaryflowError):
    """The Prefect server refused a request, or a run did not finish in time."""


class PrefectApi:
    """Runs deployments and reads runs and artifacts of one Prefect server."""

    def __init__(self, api_url: str, env: dict[str, str] | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.env = {**os.environ, **(env or {}), "PREFECT_API_URL": self.api_url}

    def post(self, path: str, body: dict[str, Any], method: str = "POST") -> Any:
        req = urllib.request.Request(  # noqa: S310 - the configured Prefect API
            f"{self.api_url}{path}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method=method,
        )  # fmt: skip
        raw = self._open(req)
        return json.loads(raw) if raw else None

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.post(path, body, method="PATCH")

    def get(self, path: str) -> Any:
        return json.loads(self._open(urllib.request.Request(f"{self.api_url}{path}")))  # noqa: S310

    def _open(self, req: urllib.request.Request) -> bytes:
        """The response body; answers the server marks as passing (429, 502, 503) are tried
        again with backoff, as Prefect's own client does: its sqlite store answers 503 while
        another writer holds the database lock (an e2e PATCH failed on exactly that)."""
        for attempt in range(RETRIES + 1):
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                    body: bytes = resp.read()
                    return body
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_CODES or attempt == RETRIES:
                    raise
                wait = _retry_after(exc.headers.get("Retry-After")) or 0.5 * 2**attempt
                time.sleep(min(wait, 10.0))
        raise AssertionError("unreachable")  # the loop returns or raises

    def run_deployment(self, name: str, params: dict[str, Any] | None = None) -> str:
        """`prefect deployment run NAME --params JSON`; the new flow run's id."""
        argv = [str(PREFECT), "deployment", "run", name]
        if params is not None:
            argv += ["--params", json.dumps(params)]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        found = _UUID.search(done.stdout)
        if done.returncode != 0 or found is None:
            raise PrefectApiError(f"{' '.join(argv[1:4])} failed: {done.stdout}{done.stderr}")
        return found[1]

    def flow_run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.get(f"/flow_runs/{run_id}")
        return run

    def wait(
        self,
        run_id: str,
        timeout_s: float,
        poll_s: float = 2.0,
        on_progress: Callable[[dict[str, Any], str | None], None] | None = None,
        progress_every_s: float = 9.0,
    ) -> dict[str, Any]:
        """The flow run once its state is final; PrefectApiError after `timeout_s`.

        `on_progress(run, latest_log_line)` is called at the first look, then at least every
        `progress_every_s` while waiting (and whenever the run logs something new), so a
        person watching sees what the run is doing: 9 s plus the two API calls of a look,
        under the 10 s a waiting `make demo` promises."""
        deadline = time.monotonic() + timeout_s
        last_said, last_line = float("-inf"), None
        while True:
            run = self.flow_run(run_id)
            if run["state_type"] in FINAL:
                return run
            if time.monotonic() > deadline:
                raise PrefectApiError(
                    f"flow run {run['name']} ({run_id}) still {run['state_name']} after "
                    f"{timeout_s:.0f} s; see the worker log and the Prefect UI"
                )
            pause = poll_s
            if on_progress is not None:
                line = self.latest_log(run_id)
                if line != last_line or time.monotonic() - last_said >= progress_every_s:
                    on_progress(run, line)
                    last_said, last_line = time.monotonic(), line
                # wake up when the next line is due, not up to a whole poll later
                pause = max(0.05, min(poll_s, last_said + progress_every_s - time.monotonic()))
            time.sleep(pause)

    def latest_log(self, run_id: str) -> str | None:
        """The newest log message of a flow run (its tasks' included), or None."""
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_DESC",
                "limit": 1}  # fmt: skip
        try:
            logs: list[dict[str, Any]] = self.post("/logs/filter", body)
        except OSError:
            return None
        return str(logs[0]["message"]).splitlines()[0] if logs else None

    def runs_of(self, deployment: str, after: float | None = None) -> list[dict[str, Any]]:
        """Flow runs of `flow/deployment`, oldest first, created after the epoch `after`."""
        dep = self.get(f"/deployments/name/{deployment}")
        body: dict[str, Any] = {"flow_runs": {"deployment_id": {"any_": [dep["id"]]}},
                                "sort": "EXPECTED_START_TIME_ASC", "limit": 200}  # fmt: skip
        runs: list[dict[str, Any]] = self.post("/flow_runs/filter", body)
        if after is None:
            return runs
        return [r for r in runs if _epoch(r["created"]) > after]

    def wait_for_new_run(
        self, deployment: str, after: float, timeout_s: float = 120.0
    ) -> dict[str, Any]:
        """The first run of `deployment` created after `after` (e.g. by a trigger)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.runs_of(deployment, after)
            if runs:
                return runs[0]
            time.sleep(1.0)
        raise PrefectApiError(f"no run of {deployment} was created within {timeout_s:.0f} s")

    def cancel_unfinished(self, deployments: list[str]) -> list[str]:
        """Cancel every run of `deployments` not in a final state (a `make demo` that was
        interrupted leaves its run holding the deployment's concurrency slot, and the next
        run of it would wait for ever); the names of the runs cancelled."""
        cancelled = []
        for name in deployments:
            for run in self.runs_of(name):
                if run["state_type"] not in FINAL:
                    self.post(f"/flow_runs/{run['id']}/set_state",
                              {"state": {"type": "CANCELLED", "name": "Cancelled",
                                         "message": "left by an interrupted demo"},
                               "force": True})  # fmt: skip
                    cancelled.append(str(run["name"]))
        return cancelled

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        body = {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}
        found: list[dict[str, Any]] = self.post("/artifacts/filter", body)
        return found

    def markdown(self, run_id: str, key: str) -> str | None:
        """The run's markdown artifact called `key` (e.g. release-tiny-chat)."""
        for art in self.artifacts(run_id):
            if art["type"] == "markdown" and art.get("key") == key:
                return str(art["data"])
        return None


def verdict_of(markdown: str | None) -> str | None:
    """`promoted` from a record starting `# Verdict: promoted` (drift: `# Drift check: …`)."""
    if not markdown:
        return None
    head = markdown.splitlines()[0]
    return head.split(":", 1)[1].strip() if ":" in head else None


def reasons_of(markdown: str | None, most: int = 3) -> list[str]:
    """The record's `## Reasons` bullets (at most `most`), or its first lines without one."""
    lines = (markdown or "").splitlines()
    if "## Reasons" not in lines:
        return [ln for ln in lines[2:5] if ln.strip()]
    found = []
    for line in lines[lines.index("## Reasons") + 2 :]:
        if not line.startswith("- "):
            break
        found.append(line[2:])
    return found[:most]


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
