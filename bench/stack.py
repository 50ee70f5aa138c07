"""The real serving stack the router, serving and transitions benchmarks share.

    stack = vllm_stack(ctx)        # started once per run: its own target name and ports
    stack.ensure_stable()          # vLLM container of the demo model as the stable (v1)
    stack.ensure_canary()          # a second one next to it (v2, v3, …), at 0 %
    stack.key, stack.target.router_url, stack.direct("stable")

Containers come from the serving image of the trained demo model (infra/image, cached
content-addressed build) and run through the project's DockerTarget (HAProxy in front).
The shared stack pins one half of the CPUs per slot (`split_cpus`, not the target's shared
default): the serving benchmark needs a server alone on known cores, and the router and
transitions benchmarks compare paths over the same two servers either way. `close()`
(registered on the run's ExitStack) destroys the target and sweeps whatever carries its
name, even after an error.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.common import Context
from infra.image.build import build_image
from infra.targets.docker import DockerTarget
from infra.targets.docker_config import split_cpus
from tests.fixtures.docker_target import docker_client, make_config, sweep, variant
from tests.fixtures.models import trained


class VllmStack:
    """A DockerTarget with vLLM containers of one image; versions count up from 1."""

    def __init__(self, state_dir: Path, image: str, **config: Any) -> None:
        """`config`: DockerTargetConfig fields over the bench defaults (e.g. cpusets)."""
        self.client = docker_client()
        defaults: dict[str, Any] = {
            "ready_timeout_s": 900,
            "drain_timeout_s": 120,
            "scrape_interval_s": 5,
            "labels": {"io.canaryflow.test": "1", "io.canaryflow.bench": "1"},
        }
        self.config = make_config(state_dir, **{**defaults, **config})
        self.target = DockerTarget(self.config, client=self.client)
        self.image = image
        self.versions = 0
        self.deploy_s: list[float] = []
        self._closed = False

    @property
    def key(self) -> str:
        return Path(self.target.api_key_file).read_text(encoding="utf-8").strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def direct(self, role: str) -> str:
        """URL of the `role` container itself, bypassing HAProxy."""
        endpoints = self.target.endpoints()
        return endpoints["stable" if role == "stable" else "canary"].url

    def cpuset(self, role: str) -> str:
        """The CPUs the `role` container is pinned to (Docker cpuset string)."""
        name = f"canaryflow-{self.config.name}-{role}"
        container = self.client.containers.get(name)
        return str(container.attrs["HostConfig"].get("CpusetCpus") or "")

    def deploy_next(self) -> str:
        """Deploy the next version (stable when none serves, else canary); its version."""
        self.versions += 1
        version = str(self.versions)
        start = time.monotonic()
        self.target.deploy(variant(self.image, version, f"bench-{version}"))
        self.deploy_s.append(time.monotonic() - start)
        print(f"  · deployed v{version} in {self.deploy_s[-1]:.0f} s", flush=True)
        return version

    def ensure_stable(self) -> None:
        if self.target.status().stable is None:
            self.deploy_next()

    def ensure_canary(self) -> None:
        self.ensure_stable()
        if self.target.status().canary is None:
            self.deploy_next()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.target.destroy()
        finally:
            sweep(self.client, self.config.name)


def serving_image() -> tuple[Path, str]:
    """The served model's directory and its serving image (built once, then cached).

    The model is the trained demo model, or the directory in CANARYFLOW_BENCH_MODEL_DIR
    (any model the serving image can serve, e.g. to measure on your own).
    """
    given = os.environ.get("CANARYFLOW_BENCH_MODEL_DIR")
    model = Path(given) if given else trained()
    return model, build_image(model, progress=lambda m: print(f"  · {m}", flush=True)).tag


def vllm_stack(ctx: Context) -> VllmStack:
    """The run's shared stack, started on first use and closed when the run ends."""
    found = ctx.shared.get("vllm")
    if isinstance(found, VllmStack):
        return found
    _, image = serving_image()
    stack = VllmStack(ctx.work / "target", image, cpusets=split_cpus())
    ctx.resources.callback(stack.close)
    ctx.shared["vllm"] = stack
    return stack


def close_vllm_stack(ctx: Context) -> None:
    """Stop the shared stack early (frees both cores for what comes next)."""
    found = ctx.shared.pop("vllm", None)
    if isinstance(found, VllmStack):
        found.close()
