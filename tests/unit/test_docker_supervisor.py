"""The router supervisor's loop: heal what is down, back off on failure, record health."""

from __future__ import annotations

import json
from pathlib import Path

from infra.errors import RouterError
from infra.targets.docker_supervisor import Supervisor


class World:
    """HAProxy that is down until healed; a heal that fails `fail` times first."""

    def __init__(self, fail: int = 0) -> None:
        self.up, self.fail, self.heals = False, fail, 0

    def heal(self) -> list[str]:
        self.heals += 1
        if self.fail:
            self.fail -= 1
            raise RouterError("haproxy: cannot bind 127.0.0.1:8780")
        if self.up:
            return []
        self.up = True
        return ["haproxy"]

    def probe(self) -> dict[str, bool | None]:
        return {"haproxy": self.up, "prometheus": True}


def test_a_dead_router_is_restarted_and_counted(tmp_path: Path) -> None:
    world = World()
    sup = Supervisor(world.heal, world.probe, tmp_path / "supervisor.json", interval_s=1)
    assert sup.tick() == 1
    assert sup.tick() == 1
    health = json.loads((tmp_path / "supervisor.json").read_text())
    assert health["haproxy"] is True
    assert health["restarts"] == {"haproxy": 1}
    assert health["last_error"] is None


def test_failing_restarts_back_off_exponentially_then_reset(tmp_path: Path) -> None:
    world = World(fail=8)
    sup = Supervisor(world.heal, world.probe, tmp_path / "h.json", interval_s=1, max_backoff_s=30)
    waits = [sup.tick() for _ in range(9)]
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30, 1]
    health = json.loads((tmp_path / "h.json").read_text())
    assert health["restarts"] == {"haproxy": 1}
    assert health["backoff_s"] == 0.0
