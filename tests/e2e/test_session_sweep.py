"""A killed e2e session's containers are removed by the next session, a live one's are not."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid

import docker
import pytest

from infra.image.build import DEFAULT_CPU_BASE
from tests.e2e.conftest import PID_LABEL, SESSION_LABEL, sweep_dead_sessions

pytestmark = pytest.mark.e2e


def test_containers_of_dead_sessions_are_swept(docker_client: docker.DockerClient) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that was a process and is gone
    started = {}
    for name, pid in (("dead", dead.pid), ("alive", os.getpid())):
        labels = {SESSION_LABEL: uuid.uuid4().hex[:12], PID_LABEL: str(pid)}
        started[name] = docker_client.containers.run(
            DEFAULT_CPU_BASE, ["sleep", "120"], detach=True, labels=labels,
            name=f"cf-sweep-{name}-{uuid.uuid4().hex[:6]}",
        )  # fmt: skip
    try:
        removed = sweep_dead_sessions(docker_client)
        assert started["dead"].name in removed
        assert started["alive"].name not in removed
        started["alive"].reload()  # still there: its session's process lives
        with pytest.raises(docker.errors.NotFound):
            started["dead"].reload()
    finally:
        for c in started.values():
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
