"""The Kubernetes target's waits: a slot's rollout to Ready, and a slot emptied before reuse.

    waits = Waits(cluster, clock, watch_s=10, crashloop_restarts=2)
    slot_b = "app.kubernetes.io/instance=canaryflow,canaryflow.io/slot=b"
    waits.slot_free("canaryflow-b", slot_b, timeout_s=90)   # the removed variant's pods gone
    waits.ready("canaryflow-b", slot_b, timeout_s=1860)     # Ready, or a classified failure

Each wait re-reads the truth, then watches (from the resourceVersion it read, so no event
is lost) whatever it is waiting *on*: the pods while they decide, the Deployment while its
controller has yet to report them (a real server updates Deployment status just after the
pod events; watching only pods returned up to a whole watch window late), the ReplicaSets
and pods a deleted Deployment leaves while they linger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kubernetes import client

from infra.errors import KubernetesNotFoundError, RolloutTimeoutError, TargetBusyError
from infra.targets.kubernetes_api import Cluster
from infra.targets.kubernetes_rollout import (
    HASH_LABEL,
    current_pods,
    current_replica_set,
    deployment_ready,
    pending_reason,
    rollout_failure,
)

log = logging.getLogger("canaryflow.targets.kubernetes")


class Waits:
    """Waits against one cluster with one clock."""

    def __init__(
        self,
        cluster: Cluster,
        clock: Callable[[], float],
        watch_s: int,
        crashloop_restarts: int,
    ) -> None:
        self.cluster = cluster
        self.clock = clock
        self.watch_s = watch_s
        self.crashloop_restarts = crashloop_restarts

    def _window(self, remaining: float) -> int:
        return int(min(self.watch_s, remaining)) or 1

    def ready(self, name: str, slot_selector: str, timeout_s: float) -> None:
        """Until Deployment `name` is Ready; a classified DeployError as soon as it can't be."""
        deadline = self.clock() + timeout_s
        while True:
            deployment = self.cluster.read_deployment(name)
            if deployment is None:
                raise KubernetesNotFoundError(f"Deployment {name} vanished while starting")
            rs = current_replica_set(deployment, self.cluster.replica_sets(slot_selector)[0])
            pods: list[client.V1Pod] = []
            version = pod_selector = ""
            if rs is not None:
                pod_selector = f"{slot_selector},{HASH_LABEL}={rs.metadata.labels[HASH_LABEL]}"
                listed, version = self.cluster.pods(pod_selector)
                pods = list(current_pods(rs, listed))
            failure = rollout_failure(deployment, pods, self.crashloop_restarts)
            if failure is not None:
                log_text = None
                if failure.pod and failure.container:
                    log_text = self.cluster.pod_log(failure.pod, failure.container, True)
                raise failure.raise_with(log_text)
            if deployment_ready(deployment):
                return
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise RolloutTimeoutError(
                    f"Deployment {name} not Ready after {timeout_s:.0f} s: {pending_reason(pods)}"
                )
            window = self._window(remaining)
            if pods and not all(_ready(p) for p in pods):
                self.cluster.wait_change("pods", version, window, label_selector=pod_selector)
            else:  # nothing left to happen in the pods: the controller has to report
                since = str(deployment.metadata.resource_version or "")
                field = f"metadata.name={name}"
                self.cluster.wait_change("deployments", since, window, field_selector=field)

    def slot_free(self, name: str, slot_selector: str, timeout_s: float) -> None:
        """Until nothing of an earlier variant holds slot `name`: no Deployment (one being
        deleted goes once its pods are gone), no ReplicaSet, no pod, terminating or not."""
        deadline = self.clock() + timeout_s
        while True:
            deployment = self.cluster.read_deployment(name)
            if deployment is not None and deployment.metadata.deletion_timestamp is None:
                raise TargetBusyError(
                    f"Deployment {name} exists but is not a canaryflow variant (its "
                    f"canaryflow.io/role label is missing or unknown); delete it "
                    f"(kubectl delete deployment {name}) or fix its labels"
                )
            sets, sets_version = self.cluster.replica_sets(slot_selector)
            pods, version = self.cluster.pods(slot_selector)
            if deployment is None and not sets and not pods:
                return
            remaining = deadline - self.clock()
            if remaining <= 0:
                left = [p.metadata.name for p in pods] + [r.metadata.name for r in sets]
                raise TargetBusyError(
                    f"slot {name} still holds a removed variant's objects after "
                    f"{timeout_s:.0f} s ({', '.join(left) or 'the Deployment, being deleted'}); "
                    "look for stuck finalizers or pods that ignore SIGTERM (kubectl get pods "
                    f"-l {slot_selector}) and remove them, then run the release again"
                )
            log.info("%s: waiting for the removed variant's pods to go", name)
            window = self._window(remaining)
            if pods:
                self.cluster.wait_change("pods", version, window, label_selector=slot_selector)
            elif sets:
                self.cluster.wait_change(
                    "replicasets", sets_version, window, label_selector=slot_selector
                )
            else:
                since = str(deployment.metadata.resource_version or "") if deployment else ""
                field = f"metadata.name={name}"
                self.cluster.wait_change("deployments", since, window, field_selector=field)


def _ready(pod: client.V1Pod) -> bool:
    """The pod's Ready condition (the kubelet's verdict), else all its containers ready."""
    status = pod.status
    if status is None:
        return False
    conditions = {c.type: c.status for c in status.conditions or []}
    if "Ready" in conditions:
        return bool(conditions["Ready"] == "True")
    statuses = status.container_statuses or []
    return bool(statuses) and all(cs.ready is True for cs in statuses)
