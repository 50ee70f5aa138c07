"""A Prometheus server for one target: scrapes HAProxy's exporter and each variant's /metrics.

    prom = Prometheus(PrometheusLayout(state_dir, port=8784, haproxy_metrics_port=8781, ...))
    prom.start([ScrapeTarget("a", 8782, "stable", "3", "rel-7")])
    prom.update([...])                        # new roles: rewrite the file, POST /-/reload
    prom.query('sum by (variant) (rate(vllm:request_success_total[1m]))')

Every series carries `variant` and `model_version`: vLLM's as target labels, HAProxy's
per-server series by relabelling its `server` label (the slot) to the slot's current role.
The labels say what the slot was *at scrape time*, so a promoted canary's history stays
labelled canary. Reconfiguring Prometheus by reload is fine; only HAProxy must never reload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from infra.router.errors import RouterError
from infra.router.process import ManagedProcess, atomic_write

DEFAULT_BINARY = Path("/usr/bin/prometheus")
_TARGET_LABELS = ("variant", "model_version", "release_id")


@dataclass(frozen=True)
class ScrapeTarget:
    """One serving container's /metrics and what it plays now."""

    slot: str
    port: int
    variant: str
    model_version: str
    release_id: str


@dataclass(frozen=True)
class PrometheusLayout:
    """Port, scrape settings and file locations of one target's Prometheus."""

    state_dir: Path
    port: int
    haproxy_metrics_port: int
    target_name: str
    scrape_interval_s: float = 5
    retention: str = "7d"
    host: str = "127.0.0.1"

    @property
    def config(self) -> Path:
        return self.state_dir / "prometheus.yml"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "prometheus.pid"

    @property
    def logfile(self) -> Path:
        return self.state_dir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def render_config(layout: PrometheusLayout, targets: Sequence[ScrapeTarget]) -> str:
    """prometheus.yml (JSON, which YAML reads) for these targets."""
    interval = f"{layout.scrape_interval_s:g}s"
    relabel = [
        {
            "source_labels": ["server"],
            "regex": t.slot,
            "target_label": label,
            "replacement": getattr(t, label),
        }
        for t in targets
        for label in _TARGET_LABELS
    ]
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
            "external_labels": {"canaryflow_target": layout.target_name},
        },
        "scrape_configs": [
            {
                "job_name": "haproxy",
                "static_configs": [{"targets": [f"{layout.host}:{layout.haproxy_metrics_port}"]}],
                "metric_relabel_configs": relabel,
            },
            {
                "job_name": "vllm",
                "static_configs": [
                    {
                        "targets": [f"{layout.host}:{t.port}"],
                        "labels": {"slot": t.slot, **{k: getattr(t, k) for k in _TARGET_LABELS}},
                    }
                    for t in targets
                ],
            },
        ],
    }
    return json.dumps(config, indent=2) + "\n"


class Prometheus:
    """One Prometheus process per target; found again by any process through its pid file."""

    def __init__(self, layout: PrometheusLayout, binary: Path = DEFAULT_BINARY) -> None:
        self.layout = layout
        self.binary = binary
        self.process = ManagedProcess(
            name="prometheus",
            argv=(
                str(binary),
                f"--config.file={layout.config}",
                f"--storage.tsdb.path={layout.data_dir}",
                f"--storage.tsdb.retention.time={layout.retention}",
                f"--web.listen-address={layout.host}:{layout.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ),
            pidfile=layout.pidfile,
            logfile=layout.logfile,
            marker=str(layout.config),
        )

    @property
    def url(self) -> str:
        return self.layout.url

    def running(self) -> bool:
        return self.process.pid() is not None and self._ready()

    def start(self, targets: Sequence[ScrapeTarget], timeout_s: float = 30) -> None:
        """Start scraping `targets`; when it already runs, only update them."""
        if self.running():
            self.update(targets)
            return
        if not self.binary.is_file():
            raise RouterError(
                f"{self.binary} not found: install Prometheus (apt-get install prometheus) or "
                "set prometheus=false in the target config"
            )
        self.process.stop()
        self.layout.data_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.layout.config, render_config(self.layout, targets))
        self.process.start()
        deadline = time.monotonic() + timeout_s
        while not self.running():
            if self.process.pid() is None or time.monotonic() > deadline:
                raise RouterError(f"Prometheus did not become ready: {self.process.log_tail()}")
            time.sleep(0.2)

    def update(self, targets: Sequence[ScrapeTarget]) -> None:
        """Rewrite the config if it changed and reload; RouterError if Prometheus rejects it."""
        text = render_config(self.layout, targets)
        try:
            if self.layout.config.read_text() == text:
                return
        except OSError:
            pass
        atomic_write(self.layout.config, text)
        try:
            resp = httpx.post(f"{self.url}/-/reload", timeout=10)
        except httpx.HTTPError as exc:
            raise RouterError(
                f"Prometheus at {self.url} does not answer the reload: {exc}"
            ) from exc
        if resp.status_code != 200:
            raise RouterError(
                f"Prometheus rejected {self.layout.config} ({resp.status_code}): {resp.text}"
            )

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the `result` list of the answer."""
        try:
            resp = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise RouterError(f"Prometheus query {expr!r} failed: {exc}") from exc
        result: list[dict[str, Any]] = resp.json()["data"]["result"]
        return result

    def stop(self) -> None:
        self.process.stop()

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
