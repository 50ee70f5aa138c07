"""Between releases, a killed HAProxy is restarted by the supervisor: clients see errors only
for the seconds it takes, and the split it had comes back (real HAProxy, stand-in servers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest

from infra.targets.docker_config import DockerTargetConfig
from infra.targets.docker_supervisor import read_health
from tests.fixtures.docker_target import (
    docker_client,
    make_config,
    running_target,
    standin_image,
    variant,
)
from tests.fixtures.fault_report import background_stream, summarize

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def supervisor_env(config: DockerTargetConfig) -> dict[str, str]:
    """The target's settings as the CANARYFLOW_DOCKER_* variables a supervisor reads."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key, value in config.model_dump(mode="json").items():
        if value is not None:
            text = value if isinstance(value, str) else json.dumps(value)
            env[f"CANARYFLOW_DOCKER_{key.upper()}"] = text
    return env


@contextmanager
def supervising(config: DockerTargetConfig) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m infra.targets.docker_supervisor` as the worker starts it, for `config`'s
    environment (it supervises every target recorded in that state directory); SIGTERM after."""
    sup = subprocess.Popen(
        [sys.executable, "-m", "infra.targets.docker_supervisor"],
        env=supervisor_env(config), cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield sup
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(30)


def test_a_killed_router_comes_back_with_its_weights(tmp_path: Path) -> None:
    try:
        client = docker_client()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker engine ({exc}); run `make setup`")
    image = standin_image(client)
    config = make_config(tmp_path / "state")
    with running_target(config) as target:
        target.deploy(variant(image, "1", "r1", role="stable"))
        target.deploy(variant(image, "2", "r2"))
        target.set_weights(25)
        with supervising(config):
            with background_stream(target, rate_per_s=20) as seen:
                time.sleep(2)
                pid = target.router.process.pid()
                assert pid is not None
                killed = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                deadline = killed + 60
                while not target.router.running() and time.monotonic() < deadline:
                    time.sleep(0.1)
                back = time.monotonic() - killed
                time.sleep(3)
            failed = [r for r in seen.stream.results if not r.ok]
            outage = (max(r.done for r in failed) - min(r.sent for r in failed)) if failed else 0
        assert target.router.running(), "the supervisor did not restart HAProxy in 60 s"
        assert target.status().canary_percent == 25  # restored from its recorded weights
        health = read_health(target)
        assert health is not None
        assert health["restarts"] == {"haproxy": 1}
        late = [r for r in seen.stream.results if r.sent > killed + back + 1]
        assert late
        assert all(r.ok for r in late), "requests still fail after the restart"
        summarize(f"router supervisor: HAProxy SIGKILLed between releases, restarted after "
                  f"{back:.1f} s; clients saw {len(failed)} failed of "
                  f"{len(seen.stream.results)} requests over {outage:.1f} s")  # fmt: skip
