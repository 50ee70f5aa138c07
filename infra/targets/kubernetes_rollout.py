"""Reading a rollout: is a variant's Deployment Ready, and if it never will be, why not.

    if failure := rollout_failure(deployment, pods, crashloop_restarts=2): raise failure(...)
    deployment_ready(deployment)        # every wanted replica updated and Ready
    pending_reason(pods)                # "0/3 nodes are available: 3 Insufficient nvidia.com/gpu"
    rs = current_replica_set(deployment, replica_sets)   # the one its current template made
    current_pods(rs, pods)              # that ReplicaSet's pods that are not terminating

A rollout is judged only by the pods of the Deployment's *current* ReplicaSet (owned by the
Deployment's uid, same template, matched by owner reference) that are not terminating: a
real server lets the ReplicaSets and terminating pods of a Deployment deleted under the
same name linger, and judging by labels alone failed a good model on its predecessor's pods.

Pure functions over the client's models (V1Deployment, V1Pod), so the fake and a real
cluster are read the same way. Failures are classified, never guessed from a timeout alone:

    ReplicaFailure/FailedCreate "exceeded quota"   QuotaExceededError
    ReplicaFailure/FailedCreate otherwise           ContainerStartError (admission, PSA, ...)
    ErrImagePull, ImagePullBackOff, InvalidImageName   ImagePullError
    CrashLoopBackOff (≥ crashloop_restarts)        CrashLoopError (+ last state and log)
    CreateContainerConfigError                     ContainerStartError (missing Secret key, ...)
    Progressing/ProgressDeadlineExceeded           RolloutTimeoutError (+ why pods wait)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from infra.errors import (
    ContainerStartError,
    CrashLoopError,
    DeployError,
    ImagePullError,
    QuotaExceededError,
    RolloutTimeoutError,
)

HASH_LABEL = "pod-template-hash"
IMAGE_PULL = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


@dataclass(frozen=True)
class Failure:
    """Why a rollout cannot succeed: the error class, the message, and the pod to take logs of."""

    error: type[DeployError]
    message: str
    pod: str | None = None
    container: str | None = None

    def raise_with(self, log: str | None) -> DeployError:
        text = self.message if not log else f"{self.message}\nlast log lines:\n{log}"
        return self.error(text)


@functools.cache
def _serializer() -> client.ApiClient:
    return client.ApiClient()


def _controlled_by(obj: Any, uid: str | None) -> bool:
    refs = obj.metadata.owner_references or []
    return uid is not None and any(r.uid == uid and r.controller for r in refs)


def _template(template: Any) -> Any:
    """A pod template as plain data, without the controller's pod-template-hash label."""
    data = _serializer().sanitize_for_serialization(template)
    (data.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return data


def current_replica_set(
    d: client.V1Deployment, replica_sets: Sequence[client.V1ReplicaSet]
) -> client.V1ReplicaSet | None:
    """The ReplicaSet `d`'s controller made for its current template; None until it exists."""
    want = _template(d.spec.template)
    for rs in replica_sets:
        live = rs.metadata.deletion_timestamp is None and _controlled_by(rs, d.metadata.uid)
        if live and _template(rs.spec.template) == want:
            return rs
    return None


def current_pods(
    rs: client.V1ReplicaSet | None, pods: Sequence[client.V1Pod]
) -> list[client.V1Pod]:
    """`rs`'s pods that are not terminating (none while `rs` does not exist yet)."""
    if rs is None:
        return []
    uid = rs.metadata.uid
    return [p for p in pods if p.metadata.deletion_timestamp is None and _controlled_by(p, uid)]


def _conditions(d: client.V1Deployment) -> dict[str, Any]:
    return {c.type: c for c in (d.status.conditions or [])} if d.status else {}


def wanted_replicas(d: client.V1Deployment) -> int:
    return 1 if d.spec.replicas is None else int(d.spec.replicas)


def deployment_ready(d: client.V1Deployment) -> bool:
    """The controller saw the latest spec and every wanted replica is updated and Ready."""
    status, want = d.status, wanted_replicas(d)
    if status is None or (status.observed_generation or 0) < (d.metadata.generation or 0):
        return False
    return (status.updated_replicas or 0) >= want and (status.ready_replicas or 0) >= want


def deployment_healthy(d: client.V1Deployment) -> bool:
    """Serving: at least one Ready replica and the rollout not failed."""
    progressing = _conditions(d).get("Progressing")
    failed = progressing is not None and progressing.reason == "ProgressDeadlineExceeded"
    return not failed and d.status is not None and (d.status.ready_replicas or 0) >= 1


def _statuses(pod: client.V1Pod) -> list[Any]:
    status = pod.status
    if status is None:
        return []
    return list(status.init_container_statuses or []) + list(status.container_statuses or [])


def pod_failure(pod: client.V1Pod, crashloop_restarts: int) -> Failure | None:
    """The fatal state of one of the pod's containers, if any."""
    name = pod.metadata.name
    for cs in _statuses(pod):
        waiting = cs.state.waiting if cs.state else None
        if waiting is None:
            continue
        what = f"pod {name} container {cs.name}"
        if waiting.reason in IMAGE_PULL:
            return Failure(
                ImagePullError,
                (
                    f"{what} cannot pull image {cs.image}: {waiting.reason}: {waiting.message}. "
                    "Check that the tag exists in the registry (push it: infra/image), that nodes "
                    "can reach the registry, and the overlay's image_pull_secrets"
                ),
            )
        if waiting.reason == "CrashLoopBackOff" and cs.restart_count >= crashloop_restarts:
            return Failure(CrashLoopError, _crash_message(what, cs), name, cs.name)
        if waiting.reason == "CreateContainerConfigError":
            return Failure(
                ContainerStartError,
                (
                    f"{what} cannot be created: {waiting.message}. Create the missing Secret/"
                    "ConfigMap key or fix the overlay's api_key_secret / api_key_secret_key"
                ),
            )
    return None


def _crash_message(what: str, cs: Any) -> str:
    last = cs.last_state.terminated if cs.last_state else None
    exit_text = "no exit recorded"
    hint = "read the log below: the server failed while loading or warming up the model"
    if last is not None:
        exit_text = f"last exit code {last.exit_code} ({last.reason or 'no reason'})"
        if last.message:
            exit_text += f": {last.message.strip()}"
        if last.reason == "OOMKilled":
            hint = "raise memory / memory_limit in the overlay (the model and KV cache need more)"
    return (
        f"{what} is in CrashLoopBackOff after {cs.restart_count} restarts; {exit_text}. "
        f"What to do: {hint}"
    )


def pending_reason(pods: Sequence[client.V1Pod]) -> str:
    """Why pods are not Ready yet, in the scheduler's and kubelet's words."""
    reasons: list[str] = []
    for pod in pods:
        for cond in (pod.status.conditions or []) if pod.status else []:
            if cond.type == "PodScheduled" and cond.status == "False":
                reasons.append(f"{pod.metadata.name} unschedulable: {cond.message}")
        for cs in _statuses(pod):
            waiting = cs.state.waiting if cs.state else None
            if waiting is not None and waiting.reason:
                reasons.append(f"{pod.metadata.name}/{cs.name} waiting: {waiting.reason}")
            elif not cs.ready:
                reasons.append(f"{pod.metadata.name}/{cs.name} running, not Ready (probes)")
    return "; ".join(reasons) or "no pods were created"


def rollout_failure(
    d: client.V1Deployment, pods: Sequence[client.V1Pod], crashloop_restarts: int
) -> Failure | None:
    """Why the rollout of `d` cannot succeed, or None while it still can."""
    name = d.metadata.name
    conditions = _conditions(d)
    replica_failure = conditions.get("ReplicaFailure")
    if replica_failure is not None and replica_failure.status == "True":
        message = replica_failure.message or replica_failure.reason
        if "exceeded quota" in (message or ""):
            return Failure(
                QuotaExceededError,
                (
                    f"Deployment {name} cannot create pods: {message}. Lower cpu/memory/gpus or "
                    "replicas in the overlay, free quota, or ask for a larger ResourceQuota"
                ),
            )
        return Failure(ContainerStartError, f"Deployment {name} cannot create pods: {message}")
    for pod in pods:
        if (failure := pod_failure(pod, crashloop_restarts)) is not None:
            return failure
    progressing = conditions.get("Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return Failure(
            RolloutTimeoutError,
            (
                f"Deployment {name} exceeded its progress deadline "
                f"({d.spec.progress_deadline_seconds} s): {pending_reason(pods)}. For "
                "unschedulable pods add GPU nodes or lower the request; for slow starts raise "
                "cold_start_s and progress_deadline_s in the overlay"
            ),
        )
    return None
