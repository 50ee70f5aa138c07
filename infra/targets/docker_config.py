"""Settings of the Docker target; the field descriptions are the help text.

    DockerTargetConfig()                                   # defaults, overridden by env
    DockerTargetConfig(name="demo", router_port=9780, cpusets=("0", "1"))
    CANARYFLOW_DOCKER_NAME=e2e CANARYFLOW_DOCKER_ROUTER_PORT=9780 ...   # same, from env

Every field reads CANARYFLOW_DOCKER_<FIELD> when not given (tuples as JSON: '["0","1"]'),
so a release deployment's worker picks the machine's target settings from its environment.

Ports are all on 127.0.0.1: `router_port` is the single entry point clients use; each slot
publishes its container on a fixed port (so HAProxy's config never changes, see
infra/router/haproxy_config.py); HAProxy's exporter and Prometheus have their own.

The router requires the API key on everything but health and metrics, and limits bodies to
1 MiB (see infra/router/haproxy_security.py). Its per-key rate limit is off by default: the
one key of this target is also the load generator's, which sends thousands of requests per
second on purpose (canary load, benchmarks); set `router_rate_limit_per_s` when the router
faces other clients.

CPU placement (`cpusets`, `omp_threads`): by default both containers share all of this
process's CPUs and run the same number of unbound OpenMP threads (one each on 2 cores), so
the stable and the canary compete on equal terms with each other and with the pipeline's
own processes. Pinning slot a to cpu 0 and slot b to cpu 1 (the old default, still
`cpusets=["0","1"]`) made whichever variant shared its core with the flow, Locust, Prefect
and Prometheus look up to 2x slower: identical canaries were rolled back on latency. The A/A
table that chose this is `python -m bench --only aa_placement`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.router.haproxy import DEFAULT_BINARY as HAPROXY_BINARY
from infra.router.haproxy_config import SLOTS, RouterLayout
from infra.router.haproxy_security import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_RATE_WINDOW_S,
    RouterSecurity,
)
from infra.router.prometheus import DEFAULT_BINARY as PROMETHEUS_BINARY
from infra.router.prometheus import PrometheusLayout
from infra.settings import Settings

DEFAULT_DOCKER_HOST = "unix:///run/canaryflow-docker.sock"
SERVING_ENV = "CANARYFLOW_SERVING_"  # the serving image's settings (serving/settings.py)
_CPUSET = re.compile(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*")


def shared_cpus(cpus: set[int] | None = None) -> tuple[str, str] | None:
    """This process's CPUs for both slots (the default placement); None with fewer than two.

    Both servers get the same cpuset and the same number of unbound OpenMP threads
    (`DockerTargetConfig.omp_threads`), so the kernel schedules the stable, the canary and
    everything else on the machine (the flow, Locust, Prefect, Prometheus) over the same
    cores: neither variant has a core the others stay off (with `split_cpus` an identical
    canary measured up to 2x slower or faster, depending on where the floating processes
    landed). `python -m bench --only aa_placement` measures both placements side by side.
    """
    ordered = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    if len(ordered) < 2:
        return None
    both = ",".join(map(str, ordered))
    return both, both


def split_cpus(cpus: set[int] | None = None) -> tuple[str, str] | None:
    """This process's CPUs in two halves, one per slot; None with fewer than two CPUs.

    The old default, kept for benchmarks that need a server alone on known cores
    (bench/stack.py): each server's OpenMP threads are bound to its own half, so they never
    spin on the other's cores, but processes that float (the pipeline's) load one half more
    than the other, and the variant there looks slower.
    """
    ordered = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    if len(ordered) < 2:
        return None
    half = len(ordered) // 2
    return ",".join(map(str, ordered[:half])), ",".join(map(str, ordered[half:]))


def parse_cpus(cpuset: str) -> set[int]:
    """The CPU numbers of a Docker cpuset string such as '0', '0,1' or '0-3,6'."""
    cpus: set[int] = set()
    for part in cpuset.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus |= set(range(int(lo), int(hi) + 1))
        elif part:
            cpus.add(int(part))
    return cpus


class DockerTargetConfig(BaseSettings):
    """Where and how the Docker target runs stable and canary behind HAProxy."""

    model_config = SettingsConfigDict(
        env_prefix="CANARYFLOW_DOCKER_", env_parse_none_str="null", frozen=True, extra="forbid"
    )

    name: str = Field(
        "default",
        pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
        description="Target name: prefixes containers (canaryflow-NAME-stable), the network "
        "and the state directory; two names are two independent deployments.",
    )
    state_dir: Path | None = Field(
        None, description="Router, metrics and secret files; default CANARYFLOW_STATE/targets/NAME."
    )
    docker_host: str | None = Field(
        None, description=f"Docker engine URL; default $DOCKER_HOST, else {DEFAULT_DOCKER_HOST}."
    )
    router_port: int = Field(8780, ge=1, le=65535, description="Client entry point (HAProxy).")
    haproxy_metrics_port: int = Field(
        8781, ge=1, le=65535, description="HAProxy's Prometheus exporter (/metrics) and /stats."
    )
    slot_ports: tuple[int, int] = Field(
        (8782, 8783), description="Loopback ports the containers of slot a and b publish."
    )
    prometheus: bool = Field(True, description="Run a Prometheus server for this target.")
    prometheus_port: int = Field(8784, ge=1, le=65535, description="Prometheus web port.")
    scrape_interval_s: float = Field(5, gt=0, description="Prometheus scrape interval.")
    sticky_header: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Sticky A/B: route by a consistent hash of this request header (e.g. "
        "X-Canaryflow-Key); requests without it are balanced round robin.",
    )
    api_key_file: Path | None = Field(
        None, description="File with the API key the servers require; created if missing. "
        "Default STATE_DIR/secrets/api-key.",
    )  # fmt: skip
    router_rate_limit_per_s: int | None = Field(
        None, ge=1, le=1_000_000,
        description="Requests per second per API key at the router, averaged over "
        "router_rate_limit_window_s; above it HAProxy answers 429 with Retry-After. Default "
        "null (no limit): the load generator uses this same key at thousands of req/s.",
    )  # fmt: skip
    router_rate_limit_window_s: int = Field(
        1, ge=1, le=MAX_RATE_WINDOW_S,
        description="Window of the per-key rate limit, in seconds (also the Retry-After).",
    )  # fmt: skip
    router_max_body_bytes: int | None = Field(
        DEFAULT_MAX_BODY_BYTES, ge=1, le=1 << 30,
        description="Largest request body the router forwards (413 above it; chunked bodies "
        "get 411: send a Content-Length). Null: no limit.",
    )  # fmt: skip
    capture_dir: Path | None = Field(
        None, description="Where containers write request/response capture JSONL. "
        "Default STATE_DIR/capture.",
    )  # fmt: skip
    container_port: int = Field(8000, description="Port the serving image listens on.")
    kv_cache_gib: int = Field(1, ge=1, description="VLLM_CPU_KVCACHE_SPACE per container (CPU).")
    cpusets: tuple[str, str] | None = Field(
        default_factory=shared_cpus,
        description="CPUs of slot a and b (Docker cpusets, e.g. ('0,1', '0,1')). Default: this "
        "process's CPUs for both, vLLM's OpenMP threads unbound (omp_threads each), so neither "
        "variant has cores of its own (bench/aa_placement.py). Disjoint sets such as "
        "('0', '1') pin each server to its own cores and bind its threads there (fair only "
        "when nothing else runs on the machine); null: unpinned, vLLM's own 'auto' binding.",
    )
    omp_threads: int | None = Field(
        None, ge=1, le=1024,
        description="OpenMP threads per server when the slots share CPUs (OMP_NUM_THREADS); "
        "default half the shared CPUs, at least 1. Ignored with disjoint cpusets (one thread "
        "per CPU of the slot's own set).",
    )  # fmt: skip
    mem_limit: str | None = Field(None, description="Memory limit per container, e.g. '6g'.")
    shm_size: str = Field(
        "1g", description="Shared memory (shm) per container; vLLM's queues need ~512 MiB."
    )
    ready_timeout_s: float = Field(
        900, gt=0, description="How long a new container may take to become healthy."
    )
    drain_timeout_s: float = Field(
        120, gt=0, description="How long removal waits for in-flight requests to finish."
    )
    stop_grace_s: int = Field(30, ge=0, description="SIGTERM→SIGKILL grace when stopping.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels on every container and the network."
    )
    haproxy_bin: Path = Field(HAPROXY_BINARY, description="HAProxy executable (2.4 or newer).")
    prometheus_bin: Path = Field(PROMETHEUS_BINARY, description="Prometheus executable.")

    @model_validator(mode="after")
    def _distinct_ports(self) -> DockerTargetConfig:
        ports = [self.router_port, self.haproxy_metrics_port, *self.slot_ports]
        if self.prometheus:
            ports.append(self.prometheus_port)
        if len(set(ports)) != len(ports):
            raise ValueError(f"router, metrics, slot and Prometheus ports must differ: {ports}")
        return self

    @model_validator(mode="after")
    def _valid_cpusets(self) -> DockerTargetConfig:
        for cpus in self.cpusets or ():
            if not _CPUSET.fullmatch(cpus):
                raise ValueError(f"cpuset {cpus!r} is not a CPU list like '0', '0,1' or '0-3,6'")
        return self

    def resolved_state_dir(self) -> Path:
        return self.state_dir or Settings().state / "targets" / self.name

    def resolved_api_key_file(self) -> Path:
        return self.api_key_file or self.resolved_state_dir() / "secrets" / "api-key"

    def resolved_capture_dir(self) -> Path:
        return self.capture_dir or self.resolved_state_dir() / "capture"

    def resolved_docker_host(self) -> str:
        return self.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST

    def router_layout(self) -> RouterLayout:
        return RouterLayout(
            state_dir=self.resolved_state_dir() / "haproxy",
            port=self.router_port,
            metrics_port=self.haproxy_metrics_port,
            slot_ports=self.slot_port_map(),
            sticky_header=self.sticky_header,
            security=RouterSecurity(
                api_key_files=(self.resolved_api_key_file(),),
                rate_limit_per_s=self.router_rate_limit_per_s,
                rate_limit_window_s=self.router_rate_limit_window_s,
                max_body_bytes=self.router_max_body_bytes,
            ),
        )

    def prometheus_layout(self) -> PrometheusLayout:
        return PrometheusLayout(
            state_dir=self.resolved_state_dir() / "prometheus",
            port=self.prometheus_port,
            haproxy_metrics_port=self.haproxy_metrics_port,
            target_name=self.name,
            scrape_interval_s=self.scrape_interval_s,
        )

    def slot_port_map(self) -> dict[str, int]:
        return dict(zip(SLOTS, self.slot_ports, strict=True))

    def cpuset(self, slot: str) -> str | None:
        return None if self.cpusets is None else self.cpusets[SLOTS.index(slot)]

    def threads_env(self, slot: str) -> dict[str, str]:
        """How vLLM's OpenMP threads of `slot` are placed: serving settings and OMP variables.

        Disjoint cpusets: bound to the slot's own CPUs (`CPU_THREADS_BIND=<cpuset>`). Shared
        (overlapping) cpusets: binding would put both servers' threads on the same cores, one
        per core, spinning against each other; so `nobind` and `omp_threads` threads each,
        which the kernel moves to whichever shared core is free. Unpinned: vLLM decides.
        """
        cpus = self.cpuset(slot)
        if cpus is None or self.cpusets is None:
            return {}
        a, b = (parse_cpus(c) for c in self.cpusets)
        if not a & b:
            return {f"{SERVING_ENV}CPU_THREADS_BIND": cpus}
        threads = self.omp_threads or max(1, len(parse_cpus(cpus)) // 2)
        return {f"{SERVING_ENV}CPU_THREADS_BIND": "nobind", "OMP_NUM_THREADS": str(threads)}
