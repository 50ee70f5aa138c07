"""A fake Kubernetes API server at the official client's REST boundary, for unit tests.

    cluster = FakeCluster()                                   # namespace canaryflow, CRDs in
    cluster.add_secret("canaryflow-api-key", {"api-key": "s3cret"})
    cluster.behave("reg/serving:v2", "crashloop")             # pods of that image crash
    cluster.fail("PATCH", "httproutes", 403, "...forbidden...")  # the next such call is refused
    target = KubernetesTarget(config, api_client=cluster.api_client())
    cluster.requests                                          # every call: method, path, query,
                                                              # content type, body

Everything above the socket is the real client: its typed APIs build the paths, query
strings and bodies, and deserialize the JSON answered here, so the tests check what a real
API server would receive (server-side apply bodies and field manager included). The fake
stores objects by resource path, applies (whole-object, like a single field manager),
merge-patches, deletes, lists by label selector, and plays Deployments' rollouts
(kubernetes_fake_pods.py); a watch is where time passes: one tick per watch request.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infra.targets.kubernetes_fake_pods import Behaviour, simulate

PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/namespaces/(?P<ns>[^/]+)"
    r"/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>log|status))?$"
)
LIST_KINDS = {"deployments": "DeploymentList", "pods": "PodList", "services": "ServiceList"}
BUILTIN = {"apps", "autoscaling", "policy", None}
NOT_INSTALLED = "the server could not find the requested resource"


@dataclass(frozen=True)
class Request:
    """One call as the API server saw it."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any


class FakeResponse:
    """What urllib3 would hand the client: status, headers, bytes; or a watch stream."""

    def __init__(self, status: int, body: Any, lines: list[bytes] | None = None) -> None:
        self.status = status
        self.reason = {200: "OK", 201: "Created"}.get(status, _status_reason(status))
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self._lines = lines or []

    def getheaders(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.getheaders().get(name.lower(), default)

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        yield from self._lines

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


def _status_reason(code: int) -> str:
    reasons = {
        400: "BadRequest",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        410: "Gone",
        415: "UnsupportedMediaType",
        422: "Invalid",
    }
    return reasons.get(code, "Error")


def status_body(code: int, message: str) -> dict[str, Any]:
    """A metav1.Status, as the API server sends with every error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _status_reason(code),
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def matches(labels: dict[str, str], label_selector: str) -> bool:
    """Equality-based selectors only (k=v,k2=v2), which is all the target uses."""
    wanted = [part.split("=", 1) for part in label_selector.split(",") if part]
    return all(labels.get(k) == v for k, v in wanted)


class FakeCluster:
    """An in-memory API server for one namespace (see the module docstring)."""

    def __init__(self, namespace: str = "canaryflow", ready_after: int = 1) -> None:
        self.namespace = namespace
        self.ready_after = ready_after
        self.installed = {"gateway.networking.k8s.io", "monitoring.coreos.com"}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.ticks: dict[str, int] = {}
        self.behaviours: dict[str, Behaviour] = {}
        self.logs: dict[str, str] = {}
        self.requests: list[Request] = []
        self.faults: list[tuple[str, str, int, str]] = []
        self.version = 100

    # -- setting the scene -----------------------------------------------------------------

    def api_client(self) -> client.ApiClient:
        """A real ApiClient whose REST layer is this fake."""
        api = client.ApiClient(client.Configuration(host="https://fake-cluster.invalid"))
        api.rest_client = _Rest(self)
        return api

    def add_secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self._store(
            "secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": name},
                "data": encoded,
            },
        )

    def add_gateway(self, name: str, address: str) -> None:
        self._store(
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

    def advance(self, ticks: int = 1) -> None:
        """Let time pass for every rollout."""
        for name in self.ticks:
            self.ticks[name] += ticks
        self._settle()

    # -- reading the outcome ---------------------------------------------------------------

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, name))

    def names(self, plural: str) -> list[str]:
        return sorted(n for p, n in self.objects if p == plural)

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
        m = PATH.match(path)
        if m is None:
            return FakeResponse(404, status_body(404, NOT_INSTALLED))
        group, plural, name, sub = m["group"], m["plural"], m["name"], m["sub"]
        for fault in self.faults:
            if fault[0] == method and fault[1] == plural:
                self.faults.remove(fault)
                return FakeResponse(fault[2], status_body(fault[2], fault[3]))
        if group not in BUILTIN and group not in self.installed:
            return FakeResponse(404, status_body(404, NOT_INSTALLED))
        if m["ns"] != self.namespace:
            return FakeResponse(404, status_body(404, f'namespaces "{m["ns"]}" not found'))
        self._settle()
        if method == "GET" and name is None:
            return self._list(plural, query)
        if method == "GET" and sub == "log":
            return self._log(name, query)
        if method == "PATCH":
            return self._patch(plural, name, query, headers.get("Content-Type", ""), body)
        existing = self.objects.get((plural, name))
        if existing is None:
            noun = plural if group in (None, "") else f"{plural}.{group}"
            return FakeResponse(404, status_body(404, f'{noun} "{name}" not found'))
        if method == "GET":
            return FakeResponse(200, existing)
        if method == "DELETE":
            del self.objects[(plural, name)]
            if plural == "deployments":
                self.ticks.pop(name, None)
            self._settle()
            return FakeResponse(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        return FakeResponse(405, status_body(405, f"{method} not supported by the fake"))

    def _patch(
        self, plural: str, name: str, query: dict[str, str], content_type: str, body: Any
    ) -> FakeResponse:
        existing = self.objects.get((plural, name))
        if content_type == "application/apply-patch+yaml":
            if not query.get("fieldManager"):
                return FakeResponse(400, status_body(400, "fieldManager is required for apply"))
            if body["metadata"]["name"] != name:
                return FakeResponse(400, status_body(400, "the name of the object does not match"))
            new = copy.deepcopy(body)
            if existing is not None and "status" in existing:
                new["status"] = existing["status"]
            new.setdefault("metadata", {})["managedFields"] = [
                {"manager": query["fieldManager"], "operation": "Apply"}
            ]
        elif content_type == "application/merge-patch+json":
            if existing is None:
                return FakeResponse(404, status_body(404, f'{plural} "{name}" not found'))
            new = merge_patch(existing, body)
        else:
            return FakeResponse(415, status_body(415, f"unsupported patch type {content_type}"))
        spec_changed = existing is None or existing.get("spec") != new.get("spec")
        generation = (existing or {}).get("metadata", {}).get("generation", 0)
        new["metadata"]["generation"] = generation + 1 if spec_changed else generation
        new["metadata"]["namespace"] = self.namespace
        if plural == "deployments" and spec_changed:
            self.ticks[name] = 0
        self._store(plural, new)
        self._settle()
        return FakeResponse(200, self.objects[(plural, name)])

    def _list(self, plural: str, query: dict[str, str]) -> FakeResponse:
        selector = query.get("labelSelector", "")
        source = (
            self.pods.values()
            if plural == "pods"
            else (o for (p, _), o in self.objects.items() if p == plural)
        )
        items = [o for o in source if matches(o["metadata"].get("labels") or {}, selector)]
        if query.get("watch", "").lower() == "true":
            since = int(query.get("resourceVersion") or 0)
            self.advance()
            events = [
                json.dumps({"type": "MODIFIED", "object": p}).encode() + b"\n"
                for p in self.pods.values()
                if int(p["metadata"]["resourceVersion"]) > since
                and matches(p["metadata"]["labels"], selector)
            ]
            return FakeResponse(200, b"", lines=events)
        kind = LIST_KINDS.get(plural, "List")
        meta = {"resourceVersion": str(self.version)}
        return FakeResponse(
            200, {"kind": kind, "apiVersion": "v1", "metadata": meta, "items": items}
        )

    def _log(self, name: str, query: dict[str, str]) -> FakeResponse:
        pod = self.pods.get(name)
        if pod is None:
            return FakeResponse(404, status_body(404, f'pods "{name}" not found'))
        image = pod["spec"]["containers"][0]["image"]
        text = self.logs.get(image, "INFO loading model\nERROR model failed to load")
        lines = text.splitlines()[-int(query.get("tailLines", "30")) :]
        return FakeResponse(200, ("\n".join(lines) + "\n").encode())

    def _store(self, plural: str, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        obj["metadata"].setdefault("namespace", self.namespace)
        obj["metadata"].setdefault("uid", f"uid-{plural}-{obj['metadata']['name']}")
        self.objects[(plural, obj["metadata"]["name"])] = obj

    def _settle(self) -> None:
        """Recompute every Deployment's status and pods for its current tick."""
        pods: dict[str, dict[str, Any]] = {}
        for (plural, name), d in self.objects.items():
            if plural != "deployments":
                continue
            image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            status, new_pods = simulate(
                d, self.behaviours.get(image, "ready"), self.ticks.get(name, 0), self.ready_after
            )
            d["status"] = status
            for pod in new_pods:
                old = self.pods.get(pod["metadata"]["name"])
                if old is not None and old["status"] == pod["status"]:
                    pod["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                else:
                    self.version += 1
                    pod["metadata"]["resourceVersion"] = str(self.version)
                pods[pod["metadata"]["name"]] = pod
        self.pods = pods


class _Rest:
    """Stands in for kubernetes.client.rest.RESTClientObject: same request() contract."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def request(
        self,
        method: str,
        url: str,
        query_params: Any = None,
        headers: Any = None,
        body: Any = None,
        post_params: Any = None,
        _preload_content: bool = True,
        _request_timeout: Any = None,
    ) -> FakeResponse:
        query = dict(parse_qsl(urlsplit(url).query))
        query.update({k: str(v) for k, v in (query_params or [])})
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        wire = None if body is None else json.loads(json.dumps(body))  # what would be sent
        response = self.cluster.handle(method, url, query, headers, wire)
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return response

    def __getattr__(self, method: str) -> Any:
        if method not in ("GET", "HEAD", "DELETE", "POST", "PUT", "PATCH", "OPTIONS"):
            raise AttributeError(method)
        return lambda url, **kw: self.request(method, url, **kw)
