"""Several Docker targets on one machine: one per model, each remembered where it lives.

    record(config)                      # DockerTarget.deploy: STATE_DIR/target.json
    check_ports(config)                 # SpecError when another target holds one of its ports
    recorded()                          # every target deployed here (the supervisor's list)

One target serves one model (infra/targets/reconcile.ensure_serves_only), so a machine that
releases two models runs two targets: a release names its own with `target_settings`
(`{"name": "extract-json", "router_port": 8790, ...}`). Each target writes the settings it
was deployed with to its state directory, so the router supervisor keeps every target's
HAProxy and Prometheus up between releases, not only the one of its environment, and a new
target whose ports another already uses is refused with both names before it starts
anything (its HAProxy would fail to bind, or worse, a slot would answer for the other).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import ValidationError

from infra.errors import SpecError
from infra.router.process import atomic_write
from infra.settings import Settings
from infra.targets.docker_config import DockerTargetConfig

RECORD = "target.json"
log = logging.getLogger("canaryflow.targets")


def ports(config: DockerTargetConfig) -> dict[int, str]:
    """{port: what it is} of a target's loopback listeners."""
    used = {
        config.router_port: "router_port",
        config.haproxy_metrics_port: "haproxy_metrics_port",
        config.slot_ports[0]: "slot_ports[0]",
        config.slot_ports[1]: "slot_ports[1]",
    }
    if config.prometheus:
        used[config.prometheus_port] = "prometheus_port"
    return used


def record(config: DockerTargetConfig) -> Path:
    """Write the settings this target was deployed with (no secret: paths and ports only)."""
    path = config.resolved_state_dir() / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, config.model_dump_json(indent=2))
    return path


def forget(config: DockerTargetConfig) -> None:
    """Drop the record of a destroyed target (nothing of it listens any more)."""
    (config.resolved_state_dir() / RECORD).unlink(missing_ok=True)


def recorded(targets_dir: Path | None = None) -> list[DockerTargetConfig]:
    """The targets deployed with their state directories in `targets_dir` (default
    CANARYFLOW_STATE/targets), by name; a record that no longer parses is skipped, logged."""
    root = targets_dir or Settings().state / "targets"
    found: list[DockerTargetConfig] = []
    for path in sorted(root.glob(f"*/{RECORD}")):
        try:
            found.append(DockerTargetConfig.model_validate(json.loads(path.read_text())))
        except (OSError, ValueError, ValidationError) as exc:
            log.warning("skipping %s: %s", path, exc)
    return found


def check_ports(config: DockerTargetConfig, others: list[DockerTargetConfig] | None = None) -> None:
    """SpecError naming both targets when another target recorded beside this one (state
    directories in the same folder) uses one of its ports."""
    mine = ports(config)
    if others is None:
        others = recorded(config.resolved_state_dir().parent)
    for other in others:
        if other.name == config.name:
            continue
        clash = sorted(set(mine) & set(ports(other)))
        if clash:
            theirs = ports(other)
            pairs = ", ".join(f"{p} ({mine[p]} here, {theirs[p]} of {other.name!r})" for p in clash)
            raise SpecError(
                f"target {config.name!r} would listen on ports target {other.name!r} already "
                f"uses: {pairs}; give this target ports of its own in target_settings "
                "(router_port, haproxy_metrics_port, slot_ports, prometheus_port), or, if "
                f"{other.name!r} is gone, remove {other.resolved_state_dir() / RECORD}"
            )
