"""Shared e2e fixtures: the Docker engine, per-session container labels, the serving image.

Every container an e2e test starts carries `io.canaryflow.test-session=<id>`; the session
finalizer removes whatever still carries it, even after a failed or interrupted test. A
session killed before its finalizer ran (SIGKILL, a lost machine) leaves its containers
behind, holding cores and ports: each session first removes the containers of sessions whose
pytest process (`io.canaryflow.test-pid`) is gone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from infra.image.build import BuiltImage, build_image, docker_host
from infra.image.smoke import docker_client as make_client

SESSION_LABEL = "io.canaryflow.test-session"
SESSION_ID = uuid.uuid4().hex[:12]
PID_LABEL = "io.canaryflow.test-pid"


def _alive(pid: str | None) -> bool:
    if pid is None or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    return True


def sweep_dead_sessions(client: docker.DockerClient) -> list[str]:
    """Remove the containers of e2e sessions whose pytest process is gone; their names."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": SESSION_LABEL}):
        labels = container.labels or {}
        if labels.get(SESSION_LABEL) == SESSION_ID or _alive(labels.get(PID_LABEL)):
            continue
        container.remove(force=True)
        removed.append(str(container.name))
    return removed


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The engine `make setup` starts; fails (not skips) when it does not answer."""
    client = make_client()
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker engine at {docker_host()} ({exc}); run `make setup`")
    removed = sweep_dead_sessions(client)
    if removed:
        print(f"removed {len(removed)} containers of earlier, dead test sessions: {removed}")
    yield client
    for container in client.containers.list(
        all=True, filters={"label": f"{SESSION_LABEL}={SESSION_ID}"}
    ):
        container.remove(force=True)
    client.close()


@pytest.fixture(scope="session")
def e2e_labels() -> dict[str, str]:
    """Put these on every container a test starts (the session finalizer removes them)."""
    return {SESSION_LABEL: SESSION_ID, PID_LABEL: str(os.getpid())}


@pytest.fixture(scope="session")
def serving_image(docker_client: docker.DockerClient, trained_model: Path) -> BuiltImage:
    """The cpu serving image with the trained demo model baked in (built once, then cached)."""
    return build_image(trained_model, progress=print)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the fault, bad-input and secret tests measured, visible without -s (CI's log)."""
    from tests.fixtures.fault_report import SUMMARY

    if SUMMARY:
        terminalreporter.section("what the e2e attacks observed")
        for line in SUMMARY:
            terminalreporter.write_line(line)
