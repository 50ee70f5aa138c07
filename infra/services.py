"""The embedded default's long-running services: start (idempotent), stop, status.

    python -m infra.services start          # Prefect server + process worker + MLflow UI
    python -m infra.services status         # what runs where
    python -m infra.services deploy         # prefect deploy --all (prefect.yaml); --paused:
                                            # the crons registered but switched off
    python -m infra.services stop

Each service is a host process started in its own session (it outlives the command), with
a pid file and a log under the state dir. `start` first asks the service's health URL: a
service that already answers is left alone, so running it twice changes nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from infra.errors import CanaryflowError
from infra.settings import Settings
from infra.targets.docker_config import DEFAULT_DOCKER_HOST

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
WORK_POOL = "canaryflow-process"
# release-k8s needs a cluster; control-release is the Prefect UI's pause/resume/promote/abort
LOCAL_DEPLOYMENTS = ("release", "control-release", "drift-check", "retrain",
                     "retrain-extract-json")  # fmt: skip
PREFECT_PORT = int(os.environ.get("CANARYFLOW_PREFECT_PORT", "4200"))
MLFLOW_PORT = int(os.environ.get("CANARYFLOW_MLFLOW_PORT", "5000"))
PREFECT_API_URL = f"http://127.0.0.1:{PREFECT_PORT}/api"
MLFLOW_UI_URL = f"http://127.0.0.1:{MLFLOW_PORT}"


class ServiceError(CanaryflowError):
    """A service did not start or answer in time."""


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    url: str  # shown in status; also probed when `health` is set
    health: str | None  # URL that answers 200 when up; None → process alive is enough
    env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 90.0


def prefect_env(settings: Settings) -> dict[str, str]:
    """Environment every Prefect client of the embedded server needs."""
    return {
        "PREFECT_HOME": str(settings.state / "prefect"),
        "PREFECT_API_URL": PREFECT_API_URL,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }


def services(settings: Settings) -> list[Service]:
    """The services in start order."""
    pe = prefect_env(settings)
    server_env = {k: v for k, v in pe.items() if k != "PREFECT_API_URL"}
    # The UI calls the API at PREFECT_UI_API_URL, which defaults to PREFECT_SERVER_API_PORT's
    # 4200, not to `--port`: on any other port the UI said "Can't connect to Server API".
    server_env["PREFECT_UI_API_URL"] = PREFECT_API_URL
    db = settings.state / "mlflow" / "mlflow.db"
    return [
        Service(
            "prefect-server",
            [
                str(VENV_BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(PREFECT_PORT),
            ],
            f"http://127.0.0.1:{PREFECT_PORT}",
            f"{PREFECT_API_URL}/health",
            server_env,
        ),
        Service(
            "prefect-worker",
            [
                str(VENV_BIN / "prefect"),
                "worker",
                "start",
                "--pool",
                WORK_POOL,
                "--type",
                "process",
            ],
            f"work pool {WORK_POOL}",
            None,
            {
                **pe,
                "PYTHONPATH": str(ROOT),
                "CANARYFLOW_ROOT": str(ROOT),  # prefect.yaml's pull step
                "CANARYFLOW_MLFLOW_UI_URL": MLFLOW_UI_URL,  # record links (infra/notify.py)
                "CANARYFLOW_STATE": str(settings.state),
                "DOCKER_HOST": os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST),
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "MLFLOW_TRACKING_URI": settings.mlflow_uri(),
            },
        ),
        Service(
            "router-supervisor",  # infra/targets/docker_supervisor.py: HAProxy/Prometheus up
            [str(VENV_BIN / "python"), "-m", "infra.targets.docker_supervisor"],
            "target default: HAProxy + Prometheus",
            None,
            {
                "PYTHONPATH": str(ROOT),
                "CANARYFLOW_STATE": str(settings.state),
                "DOCKER_HOST": os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST),
            },
        ),
        Service(
            "mlflow-ui",
            [
                str(VENV_BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(MLFLOW_PORT),
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--default-artifact-root",
                str(db.parent / "artifacts"),
                "--workers",
                "1",
            ],
            MLFLOW_UI_URL,
            f"{MLFLOW_UI_URL}/health",
            {"MLFLOW_DISABLE_TELEMETRY": "true"},
        ),
    ]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
            return bool(resp.status == 200)
    except OSError:
        return False


def _pid(settings: Settings, svc: Service) -> int | None:
    path = settings.state / "run" / f"{svc.name}.pid"
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def is_up(settings: Settings, svc: Service) -> bool:
    if svc.health is not None:
        return _answers(svc.health)
    return _pid(settings, svc) is not None


def start(settings: Settings, svc: Service) -> str:
    """Start `svc` unless it already answers; wait until it does."""
    if is_up(settings, svc):
        return "already running"
    (settings.state / "run").mkdir(parents=True, exist_ok=True)
    (settings.state / "log").mkdir(parents=True, exist_ok=True)
    (settings.state / "mlflow").mkdir(parents=True, exist_ok=True)
    log = (settings.state / "log" / f"{svc.name}.log").open("ab")
    proc = subprocess.Popen(
        svc.argv,
        cwd=ROOT,
        env={**os.environ, **svc.env},
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (settings.state / "run" / f"{svc.name}.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + svc.start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{svc.name} exited with {proc.returncode}; see {log.name}")
        if svc.health is None or _answers(svc.health):
            return f"started (pid {proc.pid})"
        time.sleep(0.5)
    raise ServiceError(
        f"{svc.name} did not answer {svc.health} in {svc.start_timeout_s:.0f} s; see {log.name}"
    )


def ensure_work_pool(settings: Settings) -> None:
    """Create the process work pool once (the worker needs it to exist)."""
    env = {**os.environ, **prefect_env(settings)}
    prefect = str(VENV_BIN / "prefect")
    found = subprocess.run(
        [prefect, "work-pool", "inspect", WORK_POOL],
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )
    if found.returncode != 0:
        subprocess.run(
            [prefect, "work-pool", "create", WORK_POOL, "--type", "process"],
            env=env,
            capture_output=True,
            check=True,
            timeout=60,
        )


def deploy(settings: Settings, *, schedules_active: bool = True) -> str:
    """Register the embedded default's deployments of prefect.yaml (with their triggers)."""
    env = {**os.environ, **prefect_env(settings), "CANARYFLOW_ROOT": str(ROOT),
           "CANARYFLOW_SCHEDULES_ACTIVE": str(schedules_active).lower()}  # fmt: skip
    done = subprocess.run(
        [str(VENV_BIN / "prefect"), "--no-prompt", "deploy",
         *(arg for name in LOCAL_DEPLOYMENTS for arg in ("-n", name))],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise ServiceError(f"prefect deploy failed:\n{(done.stdout + done.stderr)[-3000:]}")
    names = [ln.split("'")[1] for ln in done.stdout.splitlines() if "Deployment '" in ln]
    return ", ".join(dict.fromkeys(names)) or "deployed"


def stop(settings: Settings, svc: Service) -> str:
    pid = _pid(settings, svc)
    if pid is None:
        return "not running"
    os.killpg(pid, signal.SIGTERM)
    for _ in range(40):
        if _pid(settings, svc) is None:
            break
        time.sleep(0.25)
    else:
        os.killpg(pid, signal.SIGKILL)
    (settings.state / "run" / f"{svc.name}.pid").unlink(missing_ok=True)
    return "stopped"


def router_health() -> str:
    """What the supervisor last saw of the default Docker target's HAProxy and Prometheus."""
    from infra.targets.docker import DockerTarget
    from infra.targets.docker_supervisor import read_health

    health = read_health(DockerTarget())
    if health is None:
        return "router: no supervisor report yet"

    def said(key: str) -> str:
        value = health.get(key)
        return "off" if value is None else ("up" if value is True else "DOWN")

    age = time.time() - float(str(health.get("checked_at", 0)))
    line = f"haproxy {said('haproxy')}, prometheus {said('prometheus')}, restarts "
    line += f"{health.get('restarts') or 'none'}, checked {age:.0f} s ago"
    return line + (f"; last error: {health['last_error']}" if health.get("last_error") else "")


def main(argv: list[str]) -> int:
    settings = Settings()
    action = argv[0] if argv else "status"
    if action not in {"start", "stop", "status", "deploy"}:
        print("usage: python -m infra.services start|stop|status|deploy [--paused]",
              file=sys.stderr)  # fmt: skip
        return 2
    if action == "deploy":
        print(f"deployed: {deploy(settings, schedules_active='--paused' not in argv)}")
        return 0
    order = services(settings)
    for svc in reversed(order) if action == "stop" else order:
        if action == "start":
            state = start(settings, svc)
            if svc.name == "prefect-server":
                ensure_work_pool(settings)
        elif action == "stop":
            state = stop(settings, svc)
        else:
            state = "up" if is_up(settings, svc) else "down"
        print(f"{svc.name:17} {state:22} {svc.url}")
        if svc.name == "router-supervisor" and action == "status":
            print(f"{'':17} {router_health()}")
    if action != "stop":
        print(
            f"\nexport PREFECT_API_URL={PREFECT_API_URL} MLFLOW_TRACKING_URI="
            f"{settings.mlflow_uri()}"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except CanaryflowError as e:
        print(f"canaryflow: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
