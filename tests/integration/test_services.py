"""The embedded services really start, answer, are idempotent to start, and stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _services(env: dict[str, str], action: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "infra.services", action],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    return out.stdout


SERVICES = ("prefect-server", "prefect-worker", "router-supervisor", "mlflow-ui")


def states(out: str) -> dict[str, str]:
    """Each service's state word from `python -m infra.services ACTION` (its name first)."""
    rows = (line.split() for line in out.splitlines())
    return {r[0]: r[1] for r in rows if len(r) >= 2 and r[0] in SERVICES}


def test_start_status_restart_stop(tmp_path: Path) -> None:
    prefect_port, mlflow_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "CANARYFLOW_STATE": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "CANARYFLOW_PREFECT_PORT": str(prefect_port),
        "CANARYFLOW_MLFLOW_PORT": str(mlflow_port),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    try:
        first = _services(env, "start")
        assert states(first) == dict.fromkeys(SERVICES, "started"), first
        for url in (
            f"http://127.0.0.1:{prefect_port}/api/health",
            f"http://127.0.0.1:{mlflow_port}/health",
        ):
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
                assert resp.status == 200
        again = _services(env, "start")
        assert states(again) == dict.fromkeys(SERVICES, "already"), again
        assert states(_services(env, "status")) == dict.fromkeys(SERVICES, "up")
    finally:
        stopped = _services(env, "stop")
    assert states(stopped) == dict.fromkeys(SERVICES, "stopped"), stopped
    assert states(_services(env, "status")) == dict.fromkeys(SERVICES, "down")
