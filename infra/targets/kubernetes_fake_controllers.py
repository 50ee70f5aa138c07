"""The fake API server's object store and controllers, with a real server's timing habits.

    plane = ControlPlane("canaryflow")
    plane.store("deployments", manifest)     # the Deployment controller makes a ReplicaSet,
    plane.settle()                           #   the ReplicaSet controller its pods
    plane.delete_deployment("x", "Background")   # gone now; its ReplicaSet lingers
    plane.advance()                          # one tick: GC, graceful termination, rollouts

What a real kube-apiserver + controller-manager do and the fake copies, because the
Kubernetes target went wrong on each of them (issue 16):

- Deployment → ReplicaSet (`NAME-<pod-template-hash>`, owned by the Deployment's uid) →
  pods (owned by the ReplicaSet, labelled with its `pod-template-hash`).
- Background deletion (the API's default): the Deployment is gone at once, its ReplicaSet
  is garbage-collected `gc_ticks` later, and its pods then terminate for `grace_ticks`
  (deletionTimestamp set, last container state kept) before they disappear.
- Foreground deletion: the Deployment stays, with deletionTimestamp and the
  `foregroundDeletion` finalizer, until its ReplicaSets and their pods are gone.
- The Deployment's status trails its pods by one tick (the controller reacts to pod events).

Every change bumps one resourceVersion counter; deletions leave tombstones so a watch
reports them (DELETED).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from infra.targets.kubernetes_fake_pods import (
    Behaviour,
    deployment_status,
    new_pod,
    pod_status,
)

HASH_LABEL = "pod-template-hash"
DELETING_AT = "2026-11-22T08:10:00Z"


def owner_uid(obj: dict[str, Any]) -> str | None:
    refs = obj["metadata"].get("ownerReferences") or []
    return next((r["uid"] for r in refs if r.get("controller")), None)


def template_hash(template: dict[str, Any], collisions: int = 0) -> str:
    text = json.dumps(template, sort_keys=True) + str(collisions or "")
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class ControlPlane:
    """Objects by (plural, name), pods by name, and the controllers that move them."""

    def __init__(self, namespace: str, ready_after: int = 1) -> None:
        self.namespace = namespace
        self.ready_after = ready_after
        self.gc_ticks = 1
        self.grace_ticks = 2
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.ticks: dict[str, int] = {}  # per ReplicaSet: ticks since its pods were created
        self.behaviours: dict[str, Behaviour] = {}
        self.tombstones: list[tuple[str, dict[str, Any]]] = []
        self._collect: dict[str, int] = {}  # orphaned ReplicaSet -> ticks until GC
        self._terminating: dict[str, int] = {}  # pod -> ticks until gone
        self.version = 100

    # -- the store -------------------------------------------------------------------------

    def bump(self, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)

    def store(self, plural: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta.setdefault("namespace", self.namespace)
        if "uid" not in meta:  # a new object: a new uid, even under an old name
            meta["uid"] = f"uid-{self.version + 1}"
        self.bump(obj)
        self.objects[(plural, meta["name"])] = obj

    def remove(self, plural: str, name: str) -> None:
        obj = self.objects.pop((plural, name), None) if plural != "pods" else None
        if plural == "pods":
            obj = self.pods.pop(name, None)
            self._terminating.pop(name, None)
        if obj is not None:
            self.bump(obj)
            self.tombstones.append((plural, obj))
        if plural == "replicasets":
            self.ticks.pop(name, None)
            self._collect.pop(name, None)

    def of_kind(self, plural: str) -> list[dict[str, Any]]:
        if plural == "pods":
            return list(self.pods.values())
        return [o for (p, _), o in self.objects.items() if p == plural]

    def owned(self, plural: str, uid: str) -> list[dict[str, Any]]:
        return [o for o in self.of_kind(plural) if owner_uid(o) == uid]

    # -- deletion --------------------------------------------------------------------------

    def delete_deployment(self, name: str, propagation: str) -> dict[str, Any]:
        d = self.objects[("deployments", name)]
        uid = d["metadata"]["uid"]
        if propagation == "Foreground":
            d["metadata"]["deletionTimestamp"] = DELETING_AT
            d["metadata"]["finalizers"] = ["foregroundDeletion"]
            self.bump(d)
            for rs in self.owned("replicasets", uid):
                self._delete_replica_set(rs["metadata"]["name"])
            self._finish_foreground()
            return d
        self.remove("deployments", name)
        for rs in self.owned("replicasets", uid):
            self._collect[rs["metadata"]["name"]] = self.gc_ticks
        return d

    def _delete_replica_set(self, name: str) -> None:
        rs = self.objects[("replicasets", name)]
        for pod in self.owned("pods", rs["metadata"]["uid"]):
            self.terminate(pod["metadata"]["name"])
        self.remove("replicasets", name)

    def terminate(self, pod_name: str) -> None:
        pod = self.pods[pod_name]
        if "deletionTimestamp" in pod["metadata"]:
            return
        pod["metadata"]["deletionTimestamp"] = DELETING_AT
        pod["metadata"]["deletionGracePeriodSeconds"] = 30
        self.bump(pod)
        self._terminating[pod_name] = self.grace_ticks

    def _finish_foreground(self) -> None:
        """A Deployment being deleted in the foreground goes once nothing it owns is left."""
        for d in self.of_kind("deployments"):
            if "foregroundDeletion" not in (d["metadata"].get("finalizers") or []):
                continue
            if not self.owned("replicasets", d["metadata"]["uid"]) and not self._terminating_of(d):
                self.remove("deployments", d["metadata"]["name"])

    def _terminating_of(self, d: dict[str, Any]) -> bool:
        """Pods of `d`'s selector still terminating (their ReplicaSet is already gone)."""
        labels = d["spec"]["selector"]["matchLabels"]
        return any(
            all(p["metadata"]["labels"].get(k) == v for k, v in labels.items())
            for p in self.pods.values()
            if "deletionTimestamp" in p["metadata"]
        )

    # -- time ------------------------------------------------------------------------------

    def advance(self, ticks: int = 1) -> None:
        """Let `ticks` of time pass for rollouts, garbage collection and termination."""
        for _ in range(ticks):
            for name in self.ticks:
                self.ticks[name] += 1
            for pod_name, left in list(self._terminating.items()):
                if left <= 1:
                    self.remove("pods", pod_name)
                else:
                    self._terminating[pod_name] = left - 1
            for rs_name, left in list(self._collect.items()):
                if left <= 1:
                    self._delete_replica_set(rs_name)
                else:
                    self._collect[rs_name] = left - 1
            self._finish_foreground()
        self.settle()

    def settle(self) -> None:
        """The controllers' reaction to the current state (no time passes)."""
        for d in self.of_kind("deployments"):
            if "deletionTimestamp" in d["metadata"]:
                continue
            rs = self._current_replica_set(d)
            behaviour = self.behaviours.get(_image(d["spec"]["template"]), "ready")
            self._run_pods(rs, behaviour)
            ticks = self.ticks[rs["metadata"]["name"]]
            status = {} if ticks == 0 else deployment_status(d, behaviour, ticks - 1)
            if d.get("status") != status:
                d["status"] = status
                self.bump(d)

    def _current_replica_set(self, d: dict[str, Any]) -> dict[str, Any]:
        """The ReplicaSet of `d`'s template, created if missing; older ones scaled away."""
        uid, template = d["metadata"]["uid"], d["spec"]["template"]
        mine = self.owned("replicasets", uid)
        for rs in mine:
            if _without_hash(rs["spec"]["template"]) == template:
                rs["spec"]["replicas"] = d["spec"].get("replicas", 1)
                return rs
        for rs in mine:  # a new template replaces the old ReplicaSet (Recreate, for short)
            self._delete_replica_set(rs["metadata"]["name"])
        collisions = 0
        while ("replicasets", f"{d['metadata']['name']}-{template_hash(template, collisions)}") in (
            self.objects
        ):
            collisions += 1  # an orphan of an earlier Deployment still holds the name
        h = template_hash(template, collisions)
        rs_template = copy.deepcopy(template)
        rs_template["metadata"]["labels"][HASH_LABEL] = h
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": d["metadata"]["name"],
                 "uid": uid, "controller": True, "blockOwnerDeletion": True}  # fmt: skip
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{h}",
                "labels": dict(rs_template["metadata"]["labels"]),
                "ownerReferences": [owner],
            },
            "spec": {
                "replicas": d["spec"].get("replicas", 1),
                "selector": {
                    "matchLabels": {**d["spec"]["selector"]["matchLabels"], HASH_LABEL: h}
                },
                "template": rs_template,
            },
        }
        self.store("replicasets", rs)
        self.ticks[rs["metadata"]["name"]] = 0
        return rs

    def _run_pods(self, rs: dict[str, Any], behaviour: Behaviour) -> None:
        """Create the ReplicaSet's missing pods and set every live one's status for now."""
        uid, name = rs["metadata"]["uid"], rs["metadata"]["name"]
        live = [p for p in self.owned("pods", uid) if "deletionTimestamp" not in p["metadata"]]
        want = 0 if behaviour == "quota" else int(rs["spec"]["replicas"])
        for _ in range(want - len(live)):
            pod = new_pod(rs, f"{name}-{self.version + 1:05d}", f"uid-pod-{self.version + 1}")
            self.bump(pod)
            self.pods[pod["metadata"]["name"]] = pod
            live.append(pod)
        template, ticks = rs["spec"]["template"], self.ticks[name]
        for pod in live:
            status = pod_status(template, behaviour, ticks, self.ready_after)
            if pod["status"] != status:
                pod["status"] = status
                self.bump(pod)


def _image(template: dict[str, Any]) -> str:
    return str(template["spec"]["containers"][0]["image"])


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    t["metadata"]["labels"].pop(HASH_LABEL, None)
    return t
