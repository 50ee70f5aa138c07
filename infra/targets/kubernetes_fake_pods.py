"""What the fake cluster's kubelet makes of a ReplicaSet's pods, per behaviour.

    pod_status(replica_set["spec"]["template"], "crashloop", ticks=3, ready_after=1)
    deployment_status(deployment, "crashloop", ticks=2)   # what the controller reports

A *tick* is time passing (the fake advances one per watch request); the controllers that
create ReplicaSets and pods and delete them again are in kubernetes_fake_controllers.py.
The shapes are those a real API server returns (Deployment conditions, pod container
states), so the target reads them exactly as it reads a cluster:

    ready          ContainerCreating, then Running + Ready after `ready_after` ticks
    slow           ContainerCreating forever, no deadline reported (the target's own timeout)
    crashloop      CrashLoopBackOff, restartCount = ticks, last state exit 1 (Error)
    oom            CrashLoopBackOff, last state exit 137 (OOMKilled)
    imagepull      ErrImagePull, then ImagePullBackOff with the registry's message
    unschedulable  Pending (Insufficient nvidia.com/gpu), ProgressDeadlineExceeded at tick 3
    quota          no pods: ReplicaFailure / FailedCreate "exceeded quota"
"""

from __future__ import annotations

import copy
from typing import Any, Literal

Behaviour = Literal["ready", "slow", "crashloop", "oom", "imagepull", "unschedulable", "quota"]
DEADLINE_TICKS = 3
QUOTA_MESSAGE = (
    'pods "{name}-5d8f9c7b4-x2x9q" is forbidden: exceeded quota: gpu-quota, requested: '
    "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=1, limited: requests.nvidia.com/gpu=1"
)
UNSCHEDULABLE = (
    "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are "
    "available: 3 No preemption victims found for incoming pod."
)
PULL_MESSAGE = (
    'Back-off pulling image "{image}": ErrImagePull: rpc error: code = NotFound desc = failed '
    'to pull and unpack image "{image}": not found'
)


def _cond(kind: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": "2026-11-22T08:00:00Z",
        "lastTransitionTime": "2026-11-22T08:00:00Z",
    }


def _waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


def container_status(behaviour: Behaviour, image: str, ticks: int, ready_after: int) -> Any:
    """The serving container's status; None while no container exists (quota, unscheduled)."""
    status: dict[str, Any] = {
        "name": "serving",
        "image": image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
    }
    if behaviour == "ready" and ticks >= ready_after:
        running = {"running": {"startedAt": "2026-11-22T08:00:00Z"}}
        return {**status, "ready": True, "started": True, "state": running}
    if behaviour in ("ready", "slow"):
        return {**status, "state": _waiting("ContainerCreating")}
    if behaviour in ("crashloop", "oom"):
        exit_code, reason = (137, "OOMKilled") if behaviour == "oom" else (1, "Error")
        last = {
            "terminated": {
                "exitCode": exit_code,
                "reason": reason,
                "message": "",
                "startedAt": "2026-11-22T08:00:00Z",
                "finishedAt": "2026-11-22T08:00:40Z",
            }
        }
        return {
            **status,
            "restartCount": ticks,
            "lastState": last,
            "state": _waiting("CrashLoopBackOff", "back-off 40s restarting failed container"),
        }
    if behaviour == "imagepull":
        reason = "ErrImagePull" if ticks == 0 else "ImagePullBackOff"
        return {**status, "state": _waiting(reason, PULL_MESSAGE.format(image=image))}
    return None


def pod_status(
    template: dict[str, Any], behaviour: Behaviour, ticks: int, ready_after: int
) -> dict[str, Any]:
    """The status of one pod of `template` after `ticks` of `behaviour`."""
    image = template["spec"]["containers"][0]["image"]
    cs = container_status(behaviour, image, ticks, ready_after)
    conditions = [_cond("PodScheduled", "True", "")]
    phase = "Running" if cs is not None and cs["state"].get("running") else "Pending"
    if behaviour == "unschedulable":
        conditions = [_cond("PodScheduled", "False", "Unschedulable", UNSCHEDULABLE)]
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if cs is not None:
        status["containerStatuses"] = [cs]
        if behaviour in ("crashloop", "oom"):
            status["phase"] = "Running"
    return status


def new_pod(replica_set: dict[str, Any], name: str, uid: str) -> dict[str, Any]:
    """A pod the ReplicaSet controller creates: the RS's template, owned by the RS."""
    template = replica_set["spec"]["template"]
    rs_meta = replica_set["metadata"]
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_meta["name"],
             "uid": rs_meta["uid"], "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "uid": uid,
            "namespace": rs_meta["namespace"],
            "labels": copy.deepcopy(template["metadata"]["labels"]),
            "ownerReferences": [owner],
        },
        "spec": copy.deepcopy(template["spec"]),
        "status": {"phase": "Pending"},
    }


def deployment_status(
    deployment: dict[str, Any], behaviour: Behaviour, ticks: int, ready_after: int = 1
) -> dict[str, Any]:
    """The Deployment's status once the controller has seen `ticks` of its pods' `behaviour`."""
    want = deployment["spec"].get("replicas", 1)
    generation = deployment["metadata"].get("generation", 1)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": want,
        "updatedReplicas": want,
    }
    if behaviour == "quota":
        message = QUOTA_MESSAGE.format(name=deployment["metadata"]["name"])
        status.update(
            replicas=0,
            updatedReplicas=0,
            conditions=[
                _cond("Available", "False", "MinimumReplicasUnavailable"),
                _cond("ReplicaFailure", "True", "FailedCreate", message),
            ],
        )
        return status
    ready = behaviour == "ready" and ticks >= ready_after
    if ready:
        status.update(
            readyReplicas=want,
            availableReplicas=want,
            conditions=[
                _cond("Available", "True", "MinimumReplicasAvailable"),
                _cond("Progressing", "True", "NewReplicaSetAvailable"),
            ],
        )
        return status
    progressing = _cond("Progressing", "True", "ReplicaSetUpdated")
    if behaviour == "unschedulable" and ticks >= DEADLINE_TICKS:
        progressing = _cond(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            "ReplicaSet has timed out progressing.",
        )
    status.update(
        unavailableReplicas=want,
        conditions=[_cond("Available", "False", "MinimumReplicasUnavailable"), progressing],
    )
    return status
