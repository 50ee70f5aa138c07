"""A fake Kubernetes API server at the official client's REST boundary, for unit tests.

    cluster = FakeCluster()                                   # namespace canaryflow, CRDs in
    cluster.add_secret("canaryflow-api-key", {"api-key": "s3cret"})
    cluster.behave("reg/serving:v2", "crashloop")             # pods of that image crash
    cluster.fail("PATCH", "httproutes", 403, "...forbidden...")  # the next such call is refused
    cluster.uninstall("gateway.networking.k8s.io")            # that API group is not served
    target = KubernetesTarget(config, api_client=cluster.api_client(), clock=cluster.clock)
    cluster.requests                                          # every call: method, path, query,
                                                              # content type, body

Everything above the socket is the real client: its typed APIs build the paths, query
strings and bodies, and deserialize the JSON answered here, so the tests check what a real
API server would receive (server-side apply bodies and field manager included). The fake
stores objects by resource path, applies (whole-object, like a single field manager),
merge-patches, deletes (background or foreground), lists and watches by label and field
selector, serves discovery (/version, /apis) and answers a path no API group serves with
kube-apiserver's plain-text `404 page not found`. Its controllers
(kubernetes_fake_controllers.py) play Deployments → ReplicaSets → pods with a real server's
timing: lingering ReplicaSets and terminating pods after a delete, Deployment status one
tick behind the pods. A watch is where time passes: one tick per watch request, and
`clock()` moves 1 s for a watch that saw events, its whole timeout for one that saw none.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client

from infra.targets.kubernetes_fake_controllers import ControlPlane
from infra.targets.kubernetes_fake_pods import Behaviour
from infra.targets.kubernetes_fake_wire import (
    FakeResponse,
    Request,
    _Rest,
    field_matches,
    matches,
    merge_patch,
)

PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/namespaces/(?P<ns>[^/]+)"
    r"/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>log|status))?$"
)
DISCOVERY = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/?$")
LIST_KINDS = {"deployments": "DeploymentList", "pods": "PodList", "services": "ServiceList",
              "replicasets": "ReplicaSetList"}  # fmt: skip
NOT_SERVED = "the server could not find the requested resource"
# What a current cluster with the Gateway API and the Prometheus Operator serves.
SERVED = {
    "v1": ["pods", "pods/log", "services", "secrets"],
    "apps/v1": ["deployments", "replicasets"],
    "autoscaling/v2": ["horizontalpodautoscalers"],
    "policy/v1": ["poddisruptionbudgets"],
    "gateway.networking.k8s.io/v1": ["httproutes", "gateways"],
    "monitoring.coreos.com/v1": ["servicemonitors"],
}


class FakeCluster(ControlPlane):
    """An in-memory API server for one namespace (see the module docstring)."""

    def __init__(
        self, namespace: str = "canaryflow", ready_after: int = 1, git_version: str = "v1.30.2"
    ) -> None:
        super().__init__(namespace, ready_after)
        self.git_version = git_version
        self.served: dict[str, list[str]] = copy.deepcopy(SERVED)
        self.logs: dict[str, str] = {}
        self.requests: list[Request] = []
        self.faults: list[tuple[str, str, int, str]] = []
        self.seconds = 0.0

    # -- setting the scene -----------------------------------------------------------------

    def api_client(self) -> client.ApiClient:
        """A real ApiClient whose REST layer is this fake."""
        api = client.ApiClient(client.Configuration(host="https://fake-cluster.invalid"))
        api.rest_client = _Rest(self)
        return api

    def clock(self) -> float:
        """Seconds the fake's watches have taken (pass as the target's clock)."""
        return self.seconds

    def uninstall(self, group: str) -> None:
        """Stop serving every version of API group `group` (its CRDs are not installed)."""
        for gv in [gv for gv in self.served if gv.split("/")[0] == group and "/" in gv]:
            del self.served[gv]

    def add_secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": name}, "data": encoded}  # fmt: skip
        self.store("secrets", secret)

    def add_gateway(self, name: str, address: str) -> None:
        self.store(
            "gateways",
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": name},
                "spec": {},
                "status": {"addresses": [{"type": "IPAddress", "value": address}]},
            },
        )

    def behave(self, image: str, behaviour: Behaviour, log: str | None = None) -> None:
        """Pods of `image` do `behaviour` from now on; `log` is their (previous) log."""
        self.behaviours[image] = behaviour
        if log is not None:
            self.logs[image] = log

    def fail(self, method: str, plural: str, status: int, message: str) -> None:
        """The next `method` on `plural` answers `status` with `message` (once)."""
        self.faults.append((method, plural, status, message))

    # -- reading the outcome ---------------------------------------------------------------

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, name))

    def names(self, plural: str) -> list[str]:
        if plural == "pods":
            return sorted(self.pods)
        return sorted(n for p, n in self.objects if p == plural)

    def live(self, plural: str) -> list[str]:
        """Names of `plural` objects not being deleted (foreground deletion keeps them listed)."""
        found = self.pods.values() if plural == "pods" else self.of_kind(plural)
        return sorted(
            o["metadata"]["name"] for o in found if "deletionTimestamp" not in o["metadata"]
        )

    def calls(self, method: str | None = None, contains: str = "") -> list[Request]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and contains in r.path
        ]

    def writes(self) -> list[tuple[str, str]]:
        """(method, path) of every mutating call, in order."""
        return [(r.method, r.path) for r in self.requests if r.method in ("PATCH", "DELETE")]

    # -- serving requests ------------------------------------------------------------------

    def handle(
        self, method: str, url: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> FakeResponse:
        path = urlsplit(url).path
        self.requests.append(Request(method, path, query, headers.get("Content-Type", ""), body))
        if method == "GET" and (found := self._discovery(path)) is not None:
            return found
        m = PATH.match(path)
        if m is None:
            return FakeResponse.page_not_found()
        gv = "v1" if m["core"] else f"{m['group']}/{m['version']}"
        plural, name, sub = m["plural"], m["name"], m["sub"]
        if gv not in self.served:  # kube-apiserver's mux: no handler, no Status body
            return FakeResponse.page_not_found()
        for fault in self.faults:
            if fault[0] == method and fault[1] == plural:
                self.faults.remove(fault)
                return FakeResponse.error(fault[2], fault[3])
        if plural not in self.served[gv]:
            return FakeResponse.error(404, NOT_SERVED)
        if m["ns"] != self.namespace:
            return FakeResponse.error(404, f'namespaces "{m["ns"]}" not found')
        self.settle()
        if method == "GET" and name is None:
            return self._list(plural, query)
        if method == "GET" and sub == "log":
            return self._log(name, query)
        if method == "PATCH":
            return self._patch(plural, name, query, headers.get("Content-Type", ""), body)
        existing = self.pods.get(name) if plural == "pods" else self.objects.get((plural, name))
        if existing is None:
            noun = plural if m["core"] else f"{plural}.{m['group']}"
            return FakeResponse.error(404, f'{noun} "{name}" not found')
        if method == "GET":
            return FakeResponse(200, existing)
        if method == "DELETE":
            return self._delete(plural, name, query, body)
        return FakeResponse.error(405, f"{method} not supported by the fake")

    def _discovery(self, path: str) -> FakeResponse | None:
        path = path.rstrip("/") or "/"
        if path == "/version":
            major, minor = self.git_version.lstrip("v").split(".")[:2]
            info = {"major": major, "minor": minor, "gitVersion": self.git_version,
                    "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate":
                    "2026-11-01T00:00:00Z", "goVersion": "go1.22", "compiler": "gc",
                    "platform": "linux/amd64"}  # fmt: skip
            return FakeResponse(200, info)
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for gv in (gv for gv in self.served if "/" in gv):
                groups.setdefault(gv.split("/")[0], []).append(gv)
            listed = [_group(name, versions) for name, versions in groups.items()]
            return FakeResponse(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": listed})
        m = DISCOVERY.match(path)
        if m is None:
            return None
        gv = f"{m['group']}/{m['version']}"
        if gv not in self.served:
            return FakeResponse.page_not_found()
        verbs = ["get", "list", "watch", "patch", "delete"]
        resources = [
            {"name": r, "singularName": "", "namespaced": True, "kind": "", "verbs": verbs}
            for r in self.served[gv]
        ]
        body = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv}
        return FakeResponse(200, {**body, "resources": resources})

    def _patch(
        self, plural: str, name: str, query: dict[str, str], content_type: str, body: Any
    ) -> FakeResponse:
        existing = self.objects.get((plural, name))
        if content_type == "application/apply-patch+yaml":
            if not query.get("fieldManager"):
                return FakeResponse.error(400, "fieldManager is required for apply")
            if body["metadata"]["name"] != name:
                return FakeResponse.error(400, "the name of the object does not match")
            new = copy.deepcopy(body)
            if existing is not None:
                for key in ("status",):
                    if key in existing:
                        new[key] = existing[key]
                for key in ("uid", "deletionTimestamp", "finalizers"):
                    if key in existing["metadata"]:
                        new["metadata"][key] = existing["metadata"][key]
            new.setdefault("metadata", {})["managedFields"] = [
                {"manager": query["fieldManager"], "operation": "Apply"}
            ]
        elif content_type == "application/merge-patch+json":
            if existing is None:
                return FakeResponse.error(404, f'{plural} "{name}" not found')
            new = merge_patch(existing, body)
        else:
            return FakeResponse.error(415, f"unsupported patch type {content_type}")
        spec_changed = existing is None or existing.get("spec") != new.get("spec")
        generation = (existing or {}).get("metadata", {}).get("generation", 0)
        new["metadata"]["generation"] = generation + 1 if spec_changed else generation
        new["metadata"]["namespace"] = self.namespace
        self.store(plural, new)
        self.settle()
        return FakeResponse(200, self.objects[(plural, name)])

    def _delete(self, plural: str, name: str, query: dict[str, str], body: Any) -> FakeResponse:
        propagation = query.get("propagationPolicy") or (body or {}).get("propagationPolicy")
        if plural == "deployments":
            obj = self.delete_deployment(name, propagation or "Background")
            gone = ("deployments", name) not in self.objects
            return FakeResponse(200 if gone else 202, obj)
        if plural == "pods":
            self.terminate(name)
            return FakeResponse(200, self.pods[name])
        obj = self.objects[(plural, name)]
        self.remove(plural, name)
        return FakeResponse(200, obj)

    def _list(self, plural: str, query: dict[str, str]) -> FakeResponse:
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")

        def wanted(o: dict[str, Any]) -> bool:
            return matches(o["metadata"].get("labels") or {}, labels) and field_matches(o, fields)

        if query.get("watch", "").lower() == "true":
            since = int(query.get("resourceVersion") or 0)
            self.advance()
            changed = [("MODIFIED", o) for o in self.of_kind(plural)]
            changed += [("DELETED", o) for p, o in self.tombstones if p == plural]
            events = [
                json.dumps({"type": kind, "object": o}).encode() + b"\n"
                for kind, o in changed
                if int(o["metadata"]["resourceVersion"]) > since and wanted(o)
            ]
            self.seconds += 1.0 if events else float(query.get("timeoutSeconds") or 1)
            return FakeResponse(200, b"", lines=events)
        items = [o for o in self.of_kind(plural) if wanted(o)]
        kind = LIST_KINDS.get(plural, "List")
        meta = {"resourceVersion": str(self.version)}
        return FakeResponse(
            200, {"kind": kind, "apiVersion": "v1", "metadata": meta, "items": items}
        )

    def _log(self, name: str, query: dict[str, str]) -> FakeResponse:
        pod = self.pods.get(name)
        if pod is None:
            return FakeResponse.error(404, f'pods "{name}" not found')
        image = pod["spec"]["containers"][0]["image"]
        text = self.logs.get(image, "INFO loading model\nERROR model failed to load")
        lines = text.splitlines()[-int(query.get("tailLines", "30")) :]
        return FakeResponse(200, ("\n".join(lines) + "\n").encode())


def _group(name: str, group_versions: list[str]) -> dict[str, Any]:
    """An APIGroup of discovery: its served versions, the first preferred."""
    versions = [{"groupVersion": gv, "version": gv.split("/")[1]} for gv in group_versions]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}
