"""The Docker target: stable and canary containers behind HAProxy, on one machine.

    target = DockerTarget(DockerTargetConfig(name="demo"))
    target.deploy(variant_v1)      # first deploy: becomes the stable, gets 100 %
    target.deploy(variant_v2)      # next: the canary, at 0 %
    target.set_weights(10)         # HAProxy runtime API, live; no reload, no restart
    target.promote()               # or target.rollback()
    target.status()                # rebuilt from the engine (names, labels) and HAProxy

Where the truth lives (see docker_containers.py): a container's *role* is its name, its
immutable facts are labels, the traffic split is HAProxy's weights. Each step of promote and
rollback is one rename or one weight change, ordered so that a crash anywhere leaves a state
that the same call (or reconcile) finishes:

    promote   canary → 100 %  ·  stable → retiring  ·  canary → stable  ·  drain, remove retiring
    rollback  stable → 100 %  ·  canary → retiring  ·  drain, remove retiring

A retiring container is removed only after HAProxy has it in maintenance and no request in
flight, so no request is dropped. Every mutating call holds a file lock on the state dir, so
two processes never interleave steps.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors

from infra.errors import DeployError, SpecError
from infra.router.haproxy import HAProxy
from infra.router.haproxy_config import SLOTS, SlotState
from infra.router.prometheus import Prometheus, ScrapeTarget
from infra.targets import docker_fleet as fleet
from infra.targets import register_target
from infra.targets.base import Endpoint, Role, TargetState, Variant
from infra.targets.docker_config import DockerTargetConfig
from infra.targets.docker_containers import (
    MODEL_VERSION_LABEL,
    RELEASE_LABEL,
    TARGET_LABEL,
    Member,
    Naming,
    View,
    api_key,
    ensure_network,
    list_members,
    remove,
    rename,
    start,
    wait_healthy,
)
from infra.targets.docker_errors import (
    CanaryUnhealthyError,
    ContainerStartError,
    EngineUnavailableError,
    NoStableError,
    TargetBusyError,
)
from infra.targets.file_lock import locked

log = logging.getLogger("canaryflow.targets.docker")
LOCK_TIMEOUT_S = 1800
ROUTER_UP_TIMEOUT_S = 60


def desired_slots(view: View, weights: dict[str, int]) -> dict[str, SlotState]:
    """Router slots that match the containers' names, keeping the live weights.

    Only a stable or a canary is enabled; with no canary the stable gets 100 %.
    """
    roles = {m.slot: m.phase for m in (view.stable, view.canary) if m is not None}
    slots = {
        slot: SlotState(weights.get(slot, 0), True, roles[slot]) if slot in roles else SlotState()
        for slot in SLOTS
    }
    if view.stable is not None and view.canary is None:
        slots[view.stable.slot] = SlotState(100, True, "stable")
    return slots


def split(view: View, canary_percent: int) -> dict[str, SlotState]:
    """Router slots sending `canary_percent` % to the canary, the rest to the stable."""
    assert view.stable is not None, "split needs a stable"
    assert view.canary is not None, "split needs a canary"
    slots = {slot: SlotState() for slot in SLOTS}
    slots[view.stable.slot] = SlotState(100 - canary_percent, True, "stable")
    slots[view.canary.slot] = SlotState(canary_percent, True, "canary")
    return slots


def canary_percent(view: View, weights: dict[str, int]) -> int:
    """The share of traffic *not* going to the stable (100 when there is no stable)."""
    stable, canary = view.stable, view.canary
    if stable is None:
        return 0 if canary is None else 100
    on_stable = weights.get(stable.slot, 0)
    on_canary = weights.get(canary.slot, 0) if canary is not None else 0
    if on_stable + on_canary == 0:
        return 100
    return round(100 * on_canary / (on_stable + on_canary))


def scrape_targets(view: View, ports: dict[str, int]) -> list[ScrapeTarget]:
    return [
        ScrapeTarget(
            slot=m.slot,
            port=ports[m.slot],
            variant=m.phase,
            model_version=m.labels.get(MODEL_VERSION_LABEL, ""),
            release_id=m.labels.get(RELEASE_LABEL, ""),
        )
        for m in (view.stable, view.canary)
        if m is not None
    ]


class DockerTarget:
    """A DeployTarget on one Docker engine; HAProxy and Prometheus run as host processes.

    `client`, `router` and `metrics` default to the real engine, HAProxy and Prometheus of
    `config`; `on_step(name)` is called after each durable step (progress logs, crash tests).
    """

    def __init__(
        self,
        config: DockerTargetConfig | None = None,
        *,
        client: docker.DockerClient | None = None,
        router: HAProxy | None = None,
        metrics: Prometheus | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or DockerTargetConfig()
        self.naming = Naming(self.config.name)
        self.router = router or HAProxy(self.config.router_layout(), self.config.haproxy_bin)
        if metrics is None and self.config.prometheus:
            metrics = Prometheus(self.config.prometheus_layout(), self.config.prometheus_bin)
        self.metrics = metrics
        self._client = client
        self._on_step = on_step or (lambda _step: None)

    # -- the DeployTarget protocol ---------------------------------------------------------

    def deploy(self, variant: Variant) -> Endpoint:
        """Start `variant` (stable if none runs, else canary at 0 %), wait healthy and routed.

        Re-running it for a variant already deployed returns that variant's endpoint.
        """
        with self._locked():
            fleet.check_ports(self.config)  # another model's target on these ports: refused
            fleet.record(self.config)  # so the supervisor keeps this target's router up too
            view = self._prepare()
            for member in (view.stable, view.canary):
                if member is not None and member.matches(variant):
                    return self._routed(member)
            if view.canary is not None:
                raise TargetBusyError(
                    f"canary {view.canary.labels.get(MODEL_VERSION_LABEL)} of release "
                    f"{view.canary.labels.get(RELEASE_LABEL)} is deployed; promote or roll it "
                    "back first (infra.targets.reconcile does this at the start of a release)"
                )
            role: Role = "stable" if view.stable is None else "canary"
            adopt = next((m for m in view.of("starting") if m.matches(variant)), None)
            self._retire([m for m in view.of("starting") + view.of("retiring") if m is not adopt])
            slot = adopt.slot if adopt else self._view().free_slot()
            member = adopt or start(self.client, self.config, variant, role, slot)
            self._step(f"deploy:{role}:started")
            try:
                wait_healthy(member, self.config.ready_timeout_s)
            except ContainerStartError:
                remove(member, grace_s=0)
                raise
            member = rename(member, self.naming, role)
            self._step(f"deploy:{role}:named")
            return self._routed(member)

    def set_weights(self, canary_percent: int) -> None:
        """Send `canary_percent` % of new requests to the canary (HAProxy weights, live)."""
        if not 0 <= canary_percent <= 100:
            raise ValueError(f"canary_percent must be 0..100, got {canary_percent}")
        with self._locked():
            view = self._prepare()
            if view.canary is None:
                if canary_percent == 0:
                    return
                raise DeployError("no canary is deployed; deploy one before moving weights")
            if view.stable is None:
                raise DeployError("a promote was interrupted: run promote() or rollback()")
            self.router.apply(split(view, canary_percent))
            self._step(f"weights:{canary_percent}")

    def promote(self) -> None:
        """100 % canary → canary becomes stable → old stable drained and removed. Idempotent."""
        with self._locked():
            view = self._prepare()
            canary, stable = view.canary, view.stable
            if canary is not None:
                if not canary.healthy:
                    raise CanaryUnhealthyError(
                        f"canary {canary.name} is {canary.health or canary.status}; "
                        "roll back instead of promoting it"
                    )
                self.router.wait_up(canary.slot, ROUTER_UP_TIMEOUT_S)
                if stable is not None:
                    self.router.apply(split(view, 100))
                    self._step("promote:weights")
                    rename(stable, self.naming, "retiring")
                    self._step("promote:stable-retiring")
                rename(canary, self.naming, "stable")
                self._step("promote:canary-stable")
                view = self._sync(self._view())
            self._retire(view.of("retiring"))
            self._step("promote:done")

    def rollback(self) -> None:
        """100 % stable → canary drained and removed. Idempotent; undoes a half promote."""
        with self._locked():
            view = self._prepare()
            retiring = view.of("retiring")
            if view.stable is None and view.canary is not None and retiring:
                rename(retiring[0], self.naming, "stable")  # a promote stopped half-way
                self._step("rollback:stable-restored")
                view = self._sync(self._view())
            canary, stable = view.canary, view.stable
            if canary is not None:
                if stable is None:
                    raise NoStableError(
                        f"{canary.name} is the only variant deployed: promote it, or deploy a "
                        "stable first; rolling back would leave nothing serving"
                    )
                self.router.wait_up(stable.slot, ROUTER_UP_TIMEOUT_S)
                self.router.apply(split(view, 0))
                self._step("rollback:weights")
                rename(canary, self.naming, "retiring")
                self._step("rollback:canary-retiring")
                view = self._sync(self._view())
            self._retire(view.of("retiring") + view.of("starting"))
            self._step("rollback:done")

    def status(self) -> TargetState:
        """Stable, canary and split as the engine and HAProxy report them (changes nothing)."""
        view = self._view()
        running = self.router.running()
        return TargetState(
            stable=view.stable.deployed() if view.stable else None,
            canary=view.canary.deployed() if view.canary else None,
            canary_percent=canary_percent(view, self.router.weights()),
            router_url=self.router.url if running else None,
        )

    # -- beyond the protocol ---------------------------------------------------------------

    @property
    def router_url(self) -> str:
        return self.router.url

    @property
    def api_key_file(self) -> Path:
        """The file holding the key clients send as `Authorization: Bearer …` (created once)."""
        return api_key(self.config)

    @property
    def capture_dir(self) -> Path:
        """Where the servers write their request/response capture JSONL (drift checks)."""
        return self.config.resolved_capture_dir()

    def endpoints(self) -> dict[Role, Endpoint]:
        """Direct (router-bypassing) URLs of the stable and canary."""
        view = self._view()
        found = [self._endpoint(m) for m in (view.stable, view.canary) if m is not None]
        return {endpoint.role: endpoint for endpoint in found}

    def heal(self) -> list[str]:
        """Restart HAProxy and Prometheus from their recorded state when they are down while
        something is deployed (the supervisor calls it between releases); what it restarted.

        Under the target's lock, so it never races a release; a target with nothing deployed
        is left alone (there is nothing to route to, and `destroy` must stay destroyed)."""
        with self._locked():
            view = self._view()
            if view.stable is None and view.canary is None:
                return []
            down = [] if self.router.running() else ["haproxy"]
            if self.metrics is not None and not self.metrics.running():
                down.append("prometheus")
            if down:
                self._prepare()
                self._step("healed:" + ",".join(down))
            return down

    def destroy(self) -> None:
        """Remove every container and the network of this target; stop HAProxy and Prometheus;
        drop its record (docker_fleet)."""
        with self._locked():
            for member in self._view().members:
                with contextlib.suppress(docker.errors.NotFound):
                    member.container.remove(force=True)
            for network in self.client.networks.list(names=[self.naming.network]):
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()
            self.router.stop()
            if self.metrics is not None:
                self.metrics.stop()
            fleet.forget(self.config)  # its ports are free for another target now

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            host = self.config.resolved_docker_host()
            try:
                self._client = docker.DockerClient(base_url=host, version="auto", timeout=120)
            except docker.errors.DockerException as exc:
                raise EngineUnavailableError(
                    f"Docker engine at {host} does not answer ({exc}); start it with "
                    "infra/bootstrap/docker-up.sh or set DOCKER_HOST"
                ) from exc
        return self._client

    # -- steps -----------------------------------------------------------------------------

    def _view(self) -> View:
        try:
            return list_members(self.client, self.naming)
        except docker.errors.DockerException as exc:
            raise EngineUnavailableError(f"listing containers failed: {exc}") from exc

    def _prepare(self) -> View:
        """Network up, names repaired, HAProxy and Prometheus running and matching the names."""
        ensure_network(self.client, self.naming, {TARGET_LABEL: self.config.name})
        view = self._view()
        retiring = view.of("retiring")
        if view.stable is None and view.canary is None and retiring:
            # Nothing else serves: the retiring container was the stable; keep it.
            rename(retiring[0], self.naming, "stable")
            view = self._view()
        if not self.router.running():
            api_key(self.config)  # created before HAProxy, which reads its digest at start
            self.router.start(desired_slots(view, self.router.weights()))
        return self._sync(view)

    def _sync(self, view: View) -> View:
        """Make router roles, enabled slots and scrape targets follow the container names."""
        self.router.apply(desired_slots(view, self.router.weights()))
        if self.metrics is not None:
            self.metrics.start(scrape_targets(view, self.config.slot_port_map()))
        return view

    def _routed(self, member: Member) -> Endpoint:
        """Wait until `member` is healthy and HAProxy sees it up; its direct endpoint."""
        wait_healthy(member, self.config.ready_timeout_s)
        self._sync(self._view())
        self.router.wait_up(member.slot, ROUTER_UP_TIMEOUT_S)
        return self._endpoint(member)

    def _retire(self, members: Sequence[Member]) -> None:
        """Drain (the router already has their slots in maintenance), stop and remove."""
        for member in members:
            if not self.router.servers()[member.slot].status.startswith("MAINT"):
                self._sync(self._view())  # callers sync first; never remove a routed slot
            if not self.router.wait_idle(member.slot, self.config.drain_timeout_s):
                log.warning("%s still has requests in flight after %.0f s; removing it anyway",
                            member.name, self.config.drain_timeout_s)  # fmt: skip
            remove(member, self.config.stop_grace_s)
            self._step(f"removed:{member.name}")

    def _endpoint(self, member: Member) -> Endpoint:
        role: Role = "stable" if member.phase == "stable" else "canary"
        port = self.config.slot_port_map()[member.slot]
        version = member.labels.get(MODEL_VERSION_LABEL, "")
        return Endpoint(role=role, url=f"http://127.0.0.1:{port}", model_version=version)

    def _step(self, name: str) -> None:
        log.info("%s: %s", self.config.name, name)
        self._on_step(name)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        holder = f"a release is changing target {self.config.name!r}"
        return locked(self.config.resolved_state_dir() / "target.lock", LOCK_TIMEOUT_S, holder)


def make_docker_target(config: DockerTargetConfig | None = None, **fields: Any) -> DockerTarget:
    """The factory behind make_target("docker", ...): a config, or DockerTargetConfig fields
    (a release's `target_settings`, over the CANARYFLOW_DOCKER_* environment)."""
    if config is not None and fields:
        raise SpecError(f"give either config= or config fields, not both: {sorted(fields)}")
    return DockerTarget(config or DockerTargetConfig(**fields))


def register() -> None:
    """Make make_target("docker", ...) available."""
    register_target("docker", make_docker_target)
