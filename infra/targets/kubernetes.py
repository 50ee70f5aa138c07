"""The Kubernetes target: stable and canary Deployments behind one Gateway API HTTPRoute.

    target = KubernetesTarget(KubernetesTargetConfig(overlay="gpu"))  # make_target("kubernetes")
    target.deploy(variant_v1)      # first deploy: slot a, the stable, 100 % on the route
    target.deploy(variant_v2)      # next: slot b, the canary, on the route at weight 0
    target.set_weights(10)         # server-side apply of the HTTPRoute's backend weights
    target.promote()               # or target.rollback()
    target.status()                # rebuilt from the Deployments' labels and the route

Where the truth lives: each variant has a *slot* (a or b: the objects NAME-a / NAME-b,
immutable selectors); its *role* is the `canaryflow.io/role` label on its Deployment and
Service (stable, canary, retiring), changed by a merge patch, so no pod restarts; its facts
(image, model, version, release id) are annotations; the split is the route's weights. Each
promote/rollback step is one apply or one relabel, ordered so that a crash anywhere leaves
a state the same call (or reconcile) finishes:

    promote   canary → 100 %  ·  stable → retiring  ·  canary → stable  ·  route  ·  delete retiring
    rollback  stable → 100 %  ·  canary → retiring  ·  route  ·  delete retiring

A retiring slot is deleted only after the route no longer names it and `drain_s` passed
(the pods' preStop sleep covers requests still in flight), in the foreground, and a slot is
reused only once its earlier variant's ReplicaSets and pods are gone (kubernetes_wait.py):
a real server deletes in the background and keeps terminating pods, and those once failed a
good model. Before the first apply the server's version and API groups are checked against
what the overlay needs (kubernetes_preflight.py). Objects are server-side applied with
field manager `canaryflow`; a rollout is watched until Ready or a classified failure, judged
only by the current ReplicaSet's live pods (kubernetes_rollout.py), and a variant that
cannot come up, or whose route cannot be written, is deleted again.

Unlike the Docker target there is no process lock: Kubernetes serialises each write, and
the release deployment runs one flow at a time (the work pool's concurrency limit).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from infra.errors import (
    CanaryUnhealthyError,
    DeployError,
    NoStableError,
    SpecError,
    TargetBusyError,
)
from infra.k8s.render import (
    MODEL_VERSION_LABEL,
    ROLE_LABEL,
    SLOTS,
    TARGET_LABEL,
    Slot,
    object_name,
    render_route,
    render_variant,
    selector,
)
from infra.k8s.values import K8sValues
from infra.settings import Settings
from infra.targets import register_target
from infra.targets.base import Endpoint, Role, TargetState, Variant
from infra.targets.kubernetes_api import Cluster
from infra.targets.kubernetes_config import KubernetesTargetConfig, load_client
from infra.targets.kubernetes_preflight import check_cluster
from infra.targets.kubernetes_view import Member, Phase, View, canary_percent, member
from infra.targets.kubernetes_wait import Waits

log = logging.getLogger("canaryflow.targets.kubernetes")
# Deleted in this order: nothing scrapes, protects or scales a slot whose Service is gone.
SLOT_KINDS = ("ServiceMonitor", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Service",
              "Deployment")  # fmt: skip


class KubernetesTarget:
    """A DeployTarget on one namespace of a cluster (HTTPRoute router).

    `api_client` defaults to the configured cluster's (kubeconfig or in-cluster); tests pass
    kubernetes_fake.FakeCluster().api_client(). `clock`/`sleep` drive the waits; `on_step`
    is called after each durable step.
    """

    def __init__(
        self,
        config: KubernetesTargetConfig | None = None,
        *,
        api_client: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or KubernetesTargetConfig()
        self.values: K8sValues = self.config.resolved_values()
        if self.values.router != "httproute":
            raise SpecError(
                f"overlay router {self.values.router!r}: the Kubernetes target drives HTTPRoute "
                "weights; render the KServe alternative with python -m infra.k8s.render"
            )
        self._api_client = api_client
        self._cluster: Cluster | None = None
        self.server_version: tuple[int, int] | None = None  # read before the first apply
        self._clock, self._sleep = clock, sleep
        self._on_step = on_step or (lambda _step: None)

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._api_client = self._api_client or load_client(self.config)
            self._cluster = Cluster(
                self._api_client, self.values.namespace, self.config.field_manager
            )
        return self._cluster

    @property
    def waits(self) -> Waits:
        c = self.config
        return Waits(self.cluster, self._clock, c.watch_s, c.crashloop_restarts)

    # -- the DeployTarget protocol ---------------------------------------------------------

    def deploy(self, variant: Variant) -> Endpoint:
        """Apply `variant` in the free slot (stable if none runs, else canary at 0 %), wait Ready.

        Re-running it for a variant already deployed waits for it and returns its endpoint.
        """
        view = self._prepare()
        for m in (view.stable, view.canary):
            if m is not None and m.matches(variant):
                self._wait_ready(m.slot)
                self._route(self._view())
                return self._endpoint(m.slot, m.phase, variant.model_version)
        if view.canary is not None:
            c = view.canary.deployed()
            raise TargetBusyError(
                f"canary v{c.model_version} of release {c.release_id} is deployed; promote or "
                "roll it back first (infra.targets.reconcile does this at the start of a release)"
            )
        if view.of("retiring"):  # left by an interrupted promote/rollback
            self._route(view)
            self._retire(view.of("retiring"))
        role: Role = "stable" if view.stable is None else "canary"
        slot = view.free_slot()
        self._preflight()
        self.cluster.require_secret(self.values.api_key_secret, self.values.api_key_secret_key)
        self._wait_slot_free(slot)
        try:
            for doc in render_variant(self.values, variant, slot, role):
                self.cluster.apply(doc)
            self._step(f"deploy:{role}:applied:{slot}")
            self._wait_ready(slot)
            self._route(self._view())
        except DeployError:  # whatever stopped it, no half-deployed slot stays behind
            self._abandon(slot)
            raise
        self._step(f"deploy:{role}:routed")
        return self._endpoint(slot, role, variant.model_version)

    def set_weights(self, canary_percent: int) -> None:
        """Send `canary_percent` % of new requests to the canary (the route's weights)."""
        if not 0 <= canary_percent <= 100:
            raise ValueError(f"canary_percent must be 0..100, got {canary_percent}")
        view = self._prepare()
        if view.canary is None:
            if canary_percent == 0:
                return
            raise DeployError("no canary is deployed; deploy one before moving weights")
        if view.stable is None:
            raise DeployError("a promote was interrupted: run promote() or rollback()")
        self._apply_route(
            {view.stable.slot: 100 - canary_percent, view.canary.slot: canary_percent}
        )
        self._step(f"weights:{canary_percent}")

    def promote(self) -> None:
        """100 % canary → canary becomes stable → old stable deleted. Idempotent."""
        view = self._prepare()
        canary, stable = view.canary, view.stable
        if canary is not None:
            if not canary.healthy:
                raise CanaryUnhealthyError(
                    f"canary in slot {canary.slot} ({object_name(self.values, canary.slot)}) has "
                    "no Ready replica; roll back instead of promoting it"
                )
            if stable is not None:
                self._apply_route({stable.slot: 0, canary.slot: 100})
                self._step("promote:weights")
                self._relabel(stable.slot, "retiring")
                self._step("promote:stable-retiring")
            self._relabel(canary.slot, "stable")
            self._step("promote:canary-stable")
            view = self._view()
        self._route(view)
        self._retire(view.of("retiring"))
        self._step("promote:done")

    def rollback(self) -> None:
        """100 % stable → canary deleted. Idempotent; undoes a half promote."""
        view = self._prepare()
        retiring = view.of("retiring")
        if view.stable is None and view.canary is not None and retiring:
            self._relabel(retiring[0].slot, "stable")  # a promote stopped half-way
            self._step("rollback:stable-restored")
            view = self._view()
        canary, stable = view.canary, view.stable
        if canary is not None:
            if stable is None:
                raise NoStableError(
                    f"the canary in slot {canary.slot} is the only variant deployed: promote "
                    "it, or deploy a stable first; rolling back would leave nothing serving"
                )
            self._apply_route({stable.slot: 100, canary.slot: 0})
            self._step("rollback:weights")
            self._relabel(canary.slot, "retiring")
            self._step("rollback:canary-retiring")
            view = self._view()
        self._route(view)
        self._retire(view.of("retiring"))
        self._step("rollback:done")

    def status(self) -> TargetState:
        """Stable, canary and split as the API server reports them (changes nothing)."""
        view = self._view()
        route = self.cluster.get_custom("HTTPRoute", self.values.name)
        return TargetState(
            stable=view.stable.deployed() if view.stable else None,
            canary=view.canary.deployed() if view.canary else None,
            canary_percent=self._live_percent(view, route),
            router_url=self._router_url() if route is not None else None,
        )

    # -- beyond the protocol ---------------------------------------------------------------

    def endpoints(self) -> dict[Role, Endpoint]:
        """In-cluster (router-bypassing) URLs of the stable and canary."""
        view = self._view()
        found = [
            self._endpoint(m.slot, m.phase, m.annotations.get(MODEL_VERSION_LABEL, ""))
            for m in (view.stable, view.canary)
            if m is not None
        ]
        return {e.role: e for e in found}

    @property
    def api_key_file(self) -> Path:
        """A 0600 file with the key from the API key Secret (what load clients send)."""
        path = Settings().state / "targets" / f"k8s-{self.values.name}" / "api-key"
        key = self.cluster.secret_value(self.values.api_key_secret, self.values.api_key_secret_key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return path

    def destroy(self) -> None:
        """Delete the route and both slots' objects (the Secret and RBAC stay)."""
        self.cluster.delete("HTTPRoute", self.values.name)
        for slot in SLOTS:
            self._delete_slot(slot)

    # -- steps -----------------------------------------------------------------------------

    def _view(self) -> View:
        selector_text = f"{TARGET_LABEL}={self.values.name}"
        found = [member(d) for d in self.cluster.deployments(selector_text)]
        return View(tuple(sorted((m for m in found if m is not None), key=lambda m: m.slot)))

    def _prepare(self) -> View:
        """Repair a retiring stable that nothing replaced (a promote that stopped early)."""
        view = self._view()
        retiring = view.of("retiring")
        if view.stable is None and view.canary is None and retiring:
            self._relabel(retiring[0].slot, "stable")
            view = self._view()
        return view

    def _preflight(self) -> None:
        """Once per target: refuse a server that lacks what the overlay needs, before writing."""
        if self.server_version is None:
            _ = self.cluster  # resolves the ApiClient
            self.server_version = check_cluster(
                self._api_client, self.values, self.values.namespace
            )

    def _live_percent(self, view: View, route: dict[str, Any] | None) -> int:
        """The canary's share as the route sends it. Without a route nothing reaches the
        canary: 0 while a stable exists (reading that as 100 made reconcile roll back)."""
        if route is None:
            return 0 if view.stable is not None or view.canary is None else 100
        return canary_percent(view, self._weights(route))

    def _weights(self, route: dict[str, Any] | None) -> dict[str, int]:
        """Backend weight per slot, read from the route's first rule."""
        if route is None:
            return {}
        names = {object_name(self.values, s): s for s in SLOTS}
        refs = (route.get("spec", {}).get("rules") or [{}])[0].get("backendRefs") or []
        return {names[r["name"]]: int(r.get("weight", 1)) for r in refs if r.get("name") in names}

    def _route(self, view: View) -> None:
        """The route naming exactly the stable and canary, keeping the live split."""
        stable, canary = view.stable, view.canary
        if stable is None and canary is None:
            return
        if stable is None or canary is None:
            only = cast(Member, stable or canary)
            self._apply_route({only.slot: 100})
            return
        route = self.cluster.get_custom("HTTPRoute", self.values.name)
        percent = self._live_percent(view, route)
        self._apply_route({stable.slot: 100 - percent, canary.slot: percent})

    def _apply_route(self, weights: dict[Slot, int]) -> None:
        self.cluster.apply(render_route(self.values, weights))

    def _relabel(self, slot: Slot, phase: Phase) -> None:
        name = object_name(self.values, slot)
        for kind in ("Deployment", "Service"):
            self.cluster.relabel(kind, name, {ROLE_LABEL: phase})
        log.info("%s: %s is now %s", self.values.name, name, phase)

    def _retire(self, members: list[Member]) -> None:
        """Delete slots the route no longer names, after the gateway has had `drain_s`."""
        if not members:
            return
        self._sleep(self.config.drain_s)
        for m in members:
            self._delete_slot(m.slot)
            self._step(f"removed:{m.slot}")

    def _abandon(self, slot: Slot) -> None:
        """Best effort: delete a variant that could not come up (reconcile catches the rest)."""
        try:
            self._delete_slot(slot)
        except DeployError as exc:
            log.warning("could not delete %s: %s", object_name(self.values, slot), exc)

    def _delete_slot(self, slot: Slot) -> None:
        name = object_name(self.values, slot)
        for kind in SLOT_KINDS:
            self.cluster.delete(kind, name)

    def _slot_selector(self, slot: Slot) -> str:
        return ",".join(f"{k}={v}" for k, v in selector(self.values, slot).items())

    def _wait_ready(self, slot: Slot) -> None:
        """Until the slot's Deployment is Ready; a classified DeployError as soon as it can't be."""
        timeout_s = self.config.resolved_ready_timeout_s(self.values)
        self.waits.ready(object_name(self.values, slot), self._slot_selector(slot), timeout_s)

    def _wait_slot_free(self, slot: Slot) -> None:
        """Until an earlier variant's Deployment, ReplicaSets and pods have left `slot`."""
        timeout_s = self.config.resolved_slot_free_timeout_s(self.values)
        self.waits.slot_free(object_name(self.values, slot), self._slot_selector(slot), timeout_s)

    def _endpoint(self, slot: Slot, phase: str, version: str) -> Endpoint:
        role: Role = "stable" if phase == "stable" else "canary"
        host = f"{object_name(self.values, slot)}.{self.values.namespace}.svc.cluster.local"
        return Endpoint(role, f"http://{host}:{self.values.container_port}", version)

    def _router_url(self) -> str | None:
        if self.config.router_url:
            return self.config.router_url
        gw = self.values.gateway
        gateway = self.cluster.get_custom("Gateway", gw.name, gw.namespace)
        addresses = ((gateway or {}).get("status") or {}).get("addresses") or []
        return f"http://{addresses[0]['value']}" if addresses else None

    def _step(self, name: str) -> None:
        log.info("%s: %s", self.values.name, name)
        self._on_step(name)


def make_kubernetes_target(
    config: KubernetesTargetConfig | None = None, **fields: Any
) -> KubernetesTarget:
    """The factory behind make_target("kubernetes", ...): a config, or its fields (or env)."""
    if config is not None and fields:
        raise SpecError(f"give either config= or config fields, not both: {sorted(fields)}")
    return KubernetesTarget(config or KubernetesTargetConfig(**fields))


def register() -> None:
    """Make make_target("kubernetes", ...) available (infra/targets/__init__ does it lazily)."""
    register_target("kubernetes", make_kubernetes_target)
