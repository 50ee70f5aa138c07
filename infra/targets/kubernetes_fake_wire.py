"""The wire side of the fake API server: responses as urllib3 hands them, selectors, patches.

    FakeResponse(200, obj)                     # JSON, like every API server answer
    FakeResponse.page_not_found()              # the plain-text 404 of a path nothing serves
    matches(labels, "app=x,slot=a")            # equality label selectors
    merge_patch(obj, {"metadata": {...}})      # RFC 7386

`_Rest` stands in for the official client's RESTClientObject (same `request()` contract),
so every layer above the socket is the real client.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from kubernetes.client.exceptions import ApiException

if TYPE_CHECKING:
    from infra.targets.kubernetes_fake import FakeCluster

# What kube-apiserver's mux answers for a path no API group serves (text/plain, no Status).
PAGE_NOT_FOUND = b"404 page not found\n"
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    415: "UnsupportedMediaType",
    422: "Invalid",
}


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

    def __init__(
        self,
        status: int,
        body: Any,
        lines: list[bytes] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.status = status
        self.reason = REASONS.get(status, "Error")
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self._lines = lines or []
        self._content_type = content_type

    @classmethod
    def page_not_found(cls) -> FakeResponse:
        return cls(404, PAGE_NOT_FOUND, content_type="text/plain; charset=utf-8")

    @classmethod
    def error(cls, code: int, message: str) -> FakeResponse:
        return cls(code, status_body(code, message))

    def getheaders(self) -> dict[str, str]:
        return {"content-type": self._content_type}

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.getheaders().get(name.lower(), default)

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        yield from self._lines

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


def status_body(code: int, message: str) -> dict[str, Any]:
    """A metav1.Status, as the API server sends with every error of a served resource."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "Error"),
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


def field_matches(obj: dict[str, Any], field_selector: str) -> bool:
    """`metadata.name=X` (and `metadata.namespace=X`), the field selectors every kind serves."""
    meta = obj["metadata"]
    for part in (p for p in field_selector.split(",") if p):
        key, _, value = part.partition("=")
        if key not in ("metadata.name", "metadata.namespace"):
            raise ValueError(f"the fake serves no field selector {key!r}")
        if meta.get(key.split(".", 1)[1]) != value:
            return False
    return True


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
