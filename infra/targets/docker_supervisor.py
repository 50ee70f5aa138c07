"""Keep the embedded target's router and metrics up between releases.

    python -m infra.targets.docker_supervisor     # until SIGTERM; `make services` starts it
    Supervisor.for_target(target).tick()          # one look: heal what is down
    run_fleet(lambda: supervised(env_target), stop)   # every target of the machine

During a release the controller restores a lost HAProxy itself (set_weights); between
releases nothing did, so a dead HAProxy meant a dead endpoint until the next release. Every
`interval_s` the supervisor asks whether HAProxy and Prometheus run while something is
deployed and, if not, calls `DockerTarget.heal()`, which restarts them from their recorded
state (HAProxy's weights in state.json, the scrape targets from the container names) under
the target's lock, so it never races a release. A restart that fails backs off
exponentially (interval × 2^k, at most `max_backoff_s`), is logged, and is tried again; a
recovery resets the backoff. Each tick writes `STATE_DIR/supervisor.json` (health of both,
restarts so far, last error) for `make status`.

One process supervises every target of the machine: the environment's, and each other
target a release deployed (one per model, recorded in its state directory:
infra/targets/docker_fleet.py), looked for again every 10 s.

Why not systemd: the embedded target runs where systemd may not (containers, CI); this is
one loop over calls the target already has.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from infra.router.process import atomic_write
from infra.targets import docker_fleet as fleet
from infra.targets.docker import DockerTarget

log = logging.getLogger("canaryflow.supervisor")


@dataclass
class Health:
    """What the supervisor last saw; written as supervisor.json."""

    checked_at: float = 0.0
    haproxy: bool = False
    prometheus: bool | None = None
    restarts: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    backoff_s: float = 0.0


class Supervisor:
    """Heals one target's router and metrics (see the module doc).

    `heal()` restarts what is down and names it; `probe()` says what runs now
    ({"haproxy": bool, "prometheus": bool | None}); `for_target` wires a DockerTarget.
    """

    def __init__(
        self,
        heal: Callable[[], list[str]],
        probe: Callable[[], dict[str, bool | None]],
        health_file: Path,
        *,
        interval_s: float = 1.0,
        max_backoff_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.heal, self.probe, self.health_file = heal, probe, health_file
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.health = Health()
        self._failures = 0

    @classmethod
    def for_target(
        cls, target: DockerTarget, interval_s: float = 1.0, max_backoff_s: float = 60.0
    ) -> Supervisor:
        def probe() -> dict[str, bool | None]:
            metrics = target.metrics
            return {"haproxy": target.router.running(),
                    "prometheus": None if metrics is None else metrics.running()}  # fmt: skip

        return cls(target.heal, probe, health_path(target), interval_s=interval_s,
                   max_backoff_s=max_backoff_s)  # fmt: skip

    def tick(self) -> float:
        """One look and, when needed, one heal; returns the seconds to wait before the next."""
        try:
            for name in self.heal():
                self.health.restarts[name] = self.health.restarts.get(name, 0) + 1
                log.warning("%s was down: restarted from its recorded state", name)
            self._failures, self.health.last_error = 0, None
        except Exception as exc:  # any failure: log, back off, try again
            self._failures += 1
            self.health.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("heal failed (%d in a row): %s", self._failures, self.health.last_error)
        wait = min(self.max_backoff_s, self.interval_s * 2.0 ** max(0, self._failures - 1))
        self.health.backoff_s = wait if self._failures else 0.0
        self._observe()
        return wait

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            deadline = time.monotonic() + self.tick()
            while time.monotonic() < deadline and not should_stop():
                time.sleep(0.1)

    def _observe(self) -> None:
        self.health.checked_at = self.clock()
        try:
            seen = self.probe()
            self.health.haproxy = bool(seen.get("haproxy"))
            self.health.prometheus = seen.get("prometheus")
        except Exception as exc:
            self.health.haproxy, self.health.last_error = False, f"{type(exc).__name__}: {exc}"
        self.health_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.health_file, json.dumps(asdict(self.health), indent=2))


def health_path(target: DockerTarget) -> Path:
    return target.config.resolved_state_dir() / "supervisor.json"


def read_health(target: DockerTarget) -> dict[str, object] | None:
    """The last supervisor.json of `target`, or None when no supervisor has run."""
    try:
        data: dict[str, object] = json.loads(health_path(target).read_text())
    except (OSError, ValueError):
        return None
    return data


def supervised(env_target: DockerTarget) -> list[DockerTarget]:
    """The environment's target and every other target recorded beside it (one per model:
    infra/targets/docker_fleet.py), by name."""
    targets = {env_target.config.name: env_target}
    for config in fleet.recorded(env_target.config.resolved_state_dir().parent):
        if config.name not in targets:
            targets[config.name] = DockerTarget(config)
    return list(targets.values())


def run_fleet(
    discover: Callable[[], list[DockerTarget]],
    should_stop: Callable[[], bool],
    *,
    rediscover_s: float = 10.0,
    make: Callable[[DockerTarget], Supervisor] = Supervisor.for_target,
) -> dict[str, Supervisor]:
    """One Supervisor per target, each ticking on its own backoff; targets deployed later
    are picked up every `rediscover_s`. Returns the supervisors when told to stop."""
    sups: dict[str, Supervisor] = {}
    due: dict[str, float] = {}
    next_look = 0.0
    while not should_stop():
        now = time.monotonic()
        if now >= next_look:
            for target in discover():
                if target.config.name not in sups:
                    log.info("supervising target %r (state %s)", target.config.name,
                             target.config.resolved_state_dir())  # fmt: skip
                    sups[target.config.name], due[target.config.name] = make(target), now
            next_look = now + rediscover_s
        for name, sup in sups.items():
            if due[name] <= now:
                due[name] = time.monotonic() + sup.tick()
        time.sleep(0.1)
    return sups


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop: list[bool] = []

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.append(True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    env_target = DockerTarget()  # CANARYFLOW_DOCKER_* from the environment, like the worker's
    run_fleet(lambda: supervised(env_target), lambda: bool(stop))


if __name__ == "__main__":
    main()
