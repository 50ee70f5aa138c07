"""The demo's building blocks: train and register, release through the deployment, read
the verdict back, send live traffic, measure time to rollback. Used by infra/demo/__main__.py.

    ctx = DemoContext.start()                          # services up, deployments registered
    v = ctx.train("v1", TrainConfig())                 # -> "1"
    r = ctx.release("v1", {"model": "models:/tiny-chat/1"})
    r.verdict, r.reasons, r.seconds, ctx.time_to_decision(r)
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import services
from infra.demo_model.release_candidate import train_and_register
from infra.demo_model.train import TrainConfig
from infra.load.traffic import Sent, send_traffic
from infra.prefect_api import PrefectApi, reasons_of, verdict_of
from infra.settings import Settings
from validation.golden import TaskSpec, sample

NAME = "tiny-chat"
RELEASE = "release/release"
_RELEASE_ID = re.compile(r"release `([^`]+)`")


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Result:
    """One flow run as the demo reports it."""

    label: str
    run_id: str
    state: str
    verdict: str
    record: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """The record's `## Reasons` bullet list (or its first lines)."""
        return reasons_of(self.record)

    @property
    def release_id(self) -> str | None:
        found = _RELEASE_ID.search(self.record)
        return found[1] if found else None


class DemoContext:
    """The running stack the demo drives (the machine's default services and target)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api = PrefectApi(services.PREFECT_API_URL, services.prefect_env(settings))
        self.results: list[Result] = []

    @classmethod
    def start(cls) -> DemoContext:
        settings = Settings()
        for svc in services.services(settings):
            with heartbeat(f"starting {svc.name}, waiting until it answers"):
                state = services.start(settings, svc)
                if svc.name == "prefect-server":
                    services.ensure_work_pool(settings)
            say(f"  {svc.name:15} {state:24} {svc.url}")
        # Crons paused while the demo runs (a scheduled drift check must not race it).
        with heartbeat("registering prefect.yaml's deployments"):
            deployed = services.deploy(settings, schedules_active=False)
        say(f"  deployments    {deployed}")
        return cls(settings)

    def activate_schedules(self) -> str:
        services.deploy(self.settings, schedules_active=True)
        return "active"

    def train(self, label: str, config: TrainConfig) -> str:
        started = time.monotonic()
        with heartbeat(f"{label}: train ({config.steps} steps), evaluate, register"):
            report = train_and_register(config, register=True, name=NAME)
        assert report.version is not None
        say(f"  {label}: {report.result.exact_match:.1%} exact match on its held-out golden set "
            f"({config.steps} steps, {time.monotonic() - started:.0f} s) → registered "
            f"{NAME} v{report.version.version}")  # fmt: skip
        return report.version.version

    def release(
        self, label: str, spec: dict[str, Any], timeout_s: float = 3600, name: str = NAME
    ) -> Result:
        params = {"spec": spec}
        say(f"  $ prefect deployment run {RELEASE} --params '{json.dumps(params)}'")
        started = time.monotonic()
        with heartbeat(f"{label}: submitting the run to the work pool"):
            run_id = self.api.run_deployment(RELEASE, params)
        return self.follow(label, run_id, f"release-{name}", started, timeout_s)

    def follow(
        self, label: str, run_id: str, key: str, started: float, timeout_s: float = 3600
    ) -> Result:
        """Wait for a flow run and record its verdict (from its markdown artifact)."""

        def progress(run: dict[str, Any], line: str | None) -> None:
            waited = time.monotonic() - started
            say(f"    … {waited:4.0f} s {run['state_name'].lower()}: {line or 'starting'}")

        run = self.api.wait(run_id, timeout_s, on_progress=progress)
        record = self.api.markdown(run_id, key) or ""
        verdict = verdict_of(record) or run["state_name"].lower()
        result = Result(label, run_id, run["state_type"], verdict, record,
                        time.monotonic() - started)  # fmt: skip
        self.results.append(result)
        say(f"  → {label}: {verdict.upper()} ({run['state_name']}, {result.seconds:.0f} s)")
        for reason in result.reasons:
            say(f"      {reason}")
        return result

    def time_to_decision(self, result: Result) -> float | None:
        """Seconds from the first request the canary received to the end of the run."""
        if result.release_id is None:
            return None
        first = first_canary_request(self.settings.state / "releases" / result.release_id)
        end = self.api.flow_run(result.run_id).get("end_time")
        if first is None or not end:
            return None
        from datetime import datetime

        return datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp() - first

    def live_traffic(self, label: str, task: TaskSpec, n: int, seed: int) -> Sent:
        """`n` user requests drawn from `task` through the router."""
        from infra.targets.docker import DockerTarget

        target = DockerTarget()
        router = target.status().router_url
        if router is None:
            raise RuntimeError("nothing serves: the router is down")
        key = target.api_key_file.read_text().strip()
        with heartbeat(f"{label}: sending {n} requests through the router"):
            sent = send_traffic(router, key, NAME, sample(task, n, seed))
        say(f"  {label}: {n} requests ({task.min_operand}..{task.max_operand}), {sent.ok} "
            f"answered, {sent.correct} correct")  # fmt: skip
        return sent


@contextmanager
def heartbeat(what: str, logger: str = "canaryflow.train", every_s: float = 9.0) -> Iterator[None]:
    """While the block runs, print `what` and `logger`'s latest message every `every_s`
    seconds (training logs its step and loss there: infra/demo_model/fit.py)."""
    latest: list[str] = []

    class Latest(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            latest[:] = [record.getMessage()]

    log, handler, done = logging.getLogger(logger), Latest(logging.INFO), threading.Event()
    level, started = log.level, time.monotonic()
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    def tick() -> None:
        while not done.wait(every_s):
            now = f": {latest[0]}" if latest else ""
            say(f"    … {time.monotonic() - started:4.0f} s {what}{now}")

    thread = threading.Thread(target=tick, name="demo-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        log.removeHandler(handler)
        log.setLevel(level)


def first_canary_request(release_dir: Path) -> float | None:
    """The earliest `ts` of a canary request in a release's Locust records."""
    first: float | None = None
    for path in release_dir.glob("step-*/requests.jsonl"):
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("variant") == "canary" and isinstance(rec.get("ts"), int | float):
                    first = rec["ts"] if first is None else min(first, rec["ts"])
    return first


def where_to_look(settings: Settings) -> list[str]:
    return [
        f"Prefect UI     {services.PREFECT_API_URL.removesuffix('/api')}  (flow runs, "
        "artifacts: release-tiny-chat, drift-tiny-chat, retrain-tiny-chat, "
        "release-extract-json)",
        f"MLflow UI      {services.MLFLOW_UI_URL}  (experiment canaryflow-releases; models "
        f"{NAME} and extract-json: aliases, rejected tags)",
        f"reports        {settings.state / 'releases'}/<release id>/step-*/ (Locust, "
        "Evidently HTML)",
        f"drift reports  {settings.state / 'drift'}",
        f"env            export PREFECT_API_URL={services.PREFECT_API_URL} "
        f"PREFECT_HOME={os.environ.get('PREFECT_HOME', settings.state / 'prefect')}",
    ]
