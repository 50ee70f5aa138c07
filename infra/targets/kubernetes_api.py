"""The Kubernetes target's calls to the API server, through the official client's typed APIs.

    cluster = Cluster(api_client, namespace="canaryflow")
    cluster.apply(manifest)                        # server-side apply, field manager canaryflow
    cluster.deployments("app.kubernetes.io/instance=canaryflow")
    cluster.relabel("Deployment", "canaryflow-b", {"canaryflow.io/role": "stable"})
    cluster.delete("Service", "canaryflow-a")      # absent already is fine

Every ApiException becomes a named DeployError (see `api_error`) whose message says which
call failed and what to do; a connection failure is ClusterUnavailableError. A real
kube-apiserver answers a path no API group serves (a CRD not installed, autoscaling/v2 on an
old server) with a plain-text `404 page not found` and no Status: that is
ClusterUnsupportedError naming the group/version and what to install.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from infra.errors import (
    ClusterUnavailableError,
    ClusterUnsupportedError,
    DeployError,
    KubernetesForbiddenError,
    KubernetesNotFoundError,
    QuotaExceededError,
    SpecError,
)

FIELD_MANAGER = "canaryflow"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
CRD_HINTS = {
    "gateway.networking.k8s.io": "install the Gateway API CRDs (standard channel) and a "
    "Gateway implementation, or render with router: kserve",
    "serving.kserve.io": "install KServe (Serverless mode), or use router: httproute",
    "monitoring.coreos.com": "install the Prometheus Operator CRDs, or set "
    "service_monitor: false in the overlay",
    "autoscaling": "autoscaling/v2 is served from Kubernetes 1.23: upgrade the cluster, or "
    "set autoscaling.enabled: false in the overlay",
    "policy": "policy/v1 PodDisruptionBudgets are served from Kubernetes 1.21: upgrade the cluster",
}
# The API group/version each kind the target writes or reads lives in.
GROUP_VERSIONS = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Service": "v1",
    "Pod": "v1",
    "Secret": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
}


@dataclass(frozen=True)
class Custom:
    """Where a custom resource kind lives."""

    group: str
    version: str
    plural: str


CUSTOM = {
    "HTTPRoute": Custom("gateway.networking.k8s.io", "v1", "httproutes"),
    "InferenceService": Custom("serving.kserve.io", "v1beta1", "inferenceservices"),
    "ServiceMonitor": Custom("monitoring.coreos.com", "v1", "servicemonitors"),
    "Gateway": Custom("gateway.networking.k8s.io", "v1", "gateways"),
}
GROUP_VERSIONS.update({kind: f"{c.group}/{c.version}" for kind, c in CUSTOM.items()})


def _status(exc: ApiException) -> dict[str, Any] | None:
    """The metav1.Status the server sent, None when the body is not one (plain text)."""
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
    try:
        found = json.loads(body or "")
    except ValueError:
        return None
    return found if isinstance(found, dict) and found.get("kind") == "Status" else None


def _status_message(exc: ApiException) -> str:
    status = _status(exc)
    return str((status or {}).get("message") or exc.reason)


def not_served(group_version: str, what: str) -> ClusterUnsupportedError:
    """The error for a group/version the server does not serve, with what to install."""
    group = group_version.split("/")[0] if "/" in group_version else ""
    hint = CRD_HINTS.get(group, "install what serves it, or change the overlay")
    return ClusterUnsupportedError(
        f"{what}: the API server does not serve {group_version} ({group or 'core'} is not "
        f"installed); {hint}"
    )


def api_error(
    exc: ApiException, action: str, namespace: str, group_version: str | None = None
) -> DeployError:
    """The named error for a failed call; `action` says what was tried ("apply Deployment/x")."""
    message = _status_message(exc)
    where = f"{action} in namespace {namespace!r}"
    if exc.status == 404 and group_version and _status(exc) is None:
        return not_served(group_version, where)
    if exc.status == 403 and "exceeded quota" in message:
        return QuotaExceededError(
            f"{where}: {message}. Lower the overlay's resources or replicas, or ask for a "
            "larger ResourceQuota"
        )
    if exc.status == 403:
        return KubernetesForbiddenError(
            f"{where} is forbidden: {message}. Grant the Role in infra/k8s/base/rbac.yaml to "
            "the service account the release runs as (python -m infra.k8s.render --rbac)"
        )
    if exc.status == 401:
        return ClusterUnavailableError(
            f"{where}: the API server rejected the credentials ({message}); refresh the "
            "kubeconfig or the service-account token"
        )
    if exc.status == 404:
        if group_version and "could not find the requested resource" in message:
            return not_served(group_version, where)  # the group is served, not this kind
        return KubernetesNotFoundError(
            f"{where}: {message}. Create what is missing (the namespace: kubectl create "
            f"namespace {namespace}) or fix the overlay's names"
        )
    if exc.status == 422:
        return DeployError(f"{where}: the API server rejected the object: {message}")
    return DeployError(f"{where} failed ({exc.status} {exc.reason}): {message}")


class Cluster:
    """The calls the target makes, each mapped to named errors; one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str, field_manager: str = FIELD_MANAGER):
        self.namespace = namespace
        self.field_manager = field_manager
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.policy = client.PolicyV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def _call(
        self, action: str, kind: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise api_error(exc, action, self.namespace, GROUP_VERSIONS.get(kind)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnavailableError(
                f"{action}: the API server does not answer ({exc}); check the kubeconfig "
                "context, the network path to the cluster, and that it is up"
            ) from exc

    def _typed(self, kind: str, verb: str) -> Callable[..., Any]:
        apis: dict[str, tuple[Any, str]] = {
            "Deployment": (self.apps, "deployment"),
            "Service": (self.core, "service"),
            "HorizontalPodAutoscaler": (self.autoscaling, "horizontal_pod_autoscaler"),
            "PodDisruptionBudget": (self.policy, "pod_disruption_budget"),
        }
        if kind not in apis:
            raise SpecError(f"the Kubernetes target does not manage kind {kind!r}")
        api, noun = apis[kind]
        return getattr(api, f"{verb}_namespaced_{noun}")  # type: ignore[no-any-return]

    def _what(self, kind: str, name: str) -> str:
        custom = CUSTOM.get(kind)
        return f"{kind}/{name}" + (f" ({custom.plural}.{custom.group})" if custom else "")

    def apply(self, doc: dict[str, Any]) -> Any:
        """Server-side apply `doc` (force: this manager owns the fields it sets)."""
        kind, name = doc["kind"], doc["metadata"]["name"]
        opts = {"field_manager": self.field_manager, "force": True, "_content_type": APPLY}
        action = f"apply {self._what(kind, name)}"
        if kind in CUSTOM:
            c = CUSTOM[kind]
            fn = self.custom.patch_namespaced_custom_object
            return self._call(
                action, kind, fn, c.group, c.version, self.namespace, c.plural, name, doc, **opts
            )
        patch = self._typed(kind, "patch")
        return self._call(action, kind, patch, name, self.namespace, doc, **opts)

    def relabel(self, kind: str, name: str, labels: dict[str, str]) -> None:
        """Merge-patch labels (a role change), leaving every applied field alone."""
        body = {"metadata": {"labels": labels}}
        fn = self._typed(kind, "patch")
        action = f"relabel {kind}/{name}"
        self._call(
            action,
            kind,
            fn,
            name,
            self.namespace,
            body,
            field_manager=self.field_manager,
            _content_type=MERGE,
        )

    def delete(self, kind: str, name: str) -> None:
        """Delete `kind/name` in the foreground (it goes once its ReplicaSets and pods are
        gone, instead of leaving them to linger under its name); already gone is fine."""
        action = f"delete {self._what(kind, name)}"
        policy = {"propagation_policy": "Foreground"}
        try:
            if kind in CUSTOM:
                c = CUSTOM[kind]
                fn = self.custom.delete_namespaced_custom_object
                args = (c.group, c.version, self.namespace, c.plural, name)
                self._call(action, kind, fn, *args, **policy)
            else:
                fn = self._typed(kind, "delete")
                self._call(action, kind, fn, name, self.namespace, **policy)
        except ClusterUnsupportedError:
            raise
        except KubernetesNotFoundError:
            pass

    def get_custom(
        self, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """A custom object as a dict; None if it does not exist (its CRD must)."""
        c = CUSTOM[kind]
        fn = self.custom.get_namespaced_custom_object
        action = f"get {self._what(kind, name)}"
        try:
            found = self._call(
                action, kind, fn, c.group, c.version, namespace or self.namespace, c.plural, name
            )
            return cast(dict[str, Any], found)
        except ClusterUnsupportedError:
            raise
        except KubernetesNotFoundError as exc:
            if "is not installed" in str(exc):
                raise
            return None

    def deployments(self, label_selector: str) -> list[client.V1Deployment]:
        fn = self.apps.list_namespaced_deployment
        found = self._call(
            "list deployments", "Deployment", fn, self.namespace, label_selector=label_selector
        )
        return list(found.items)

    def replica_sets(self, label_selector: str) -> tuple[list[client.V1ReplicaSet], str]:
        """The ReplicaSets matching `label_selector` and the list's resourceVersion."""
        fn = self.apps.list_namespaced_replica_set
        found = self._call(
            "list replicasets", "ReplicaSet", fn, self.namespace, label_selector=label_selector
        )
        return list(found.items), str(found.metadata.resource_version or "")

    def read_deployment(self, name: str) -> client.V1Deployment | None:
        try:
            fn = self.apps.read_namespaced_deployment
            return self._call(f"read Deployment/{name}", "Deployment", fn, name, self.namespace)
        except KubernetesNotFoundError:
            return None

    def pods(self, label_selector: str) -> tuple[list[client.V1Pod], str]:
        """The pods matching `label_selector` and the list's resourceVersion (to watch from)."""
        fn = self.core.list_namespaced_pod
        found = self._call("list pods", "Pod", fn, self.namespace, label_selector=label_selector)
        return list(found.items), str(found.metadata.resource_version or "")

    def wait_change(self, plural: str, since: str, timeout_s: int, **selectors: str) -> None:
        """Block until a matching object of `plural` (pods, replicasets, deployments) changes
        after resourceVersion `since`, or `timeout_s` passes.

        `selectors`: label_selector and/or field_selector ("metadata.name=x").
        """
        lists = {
            "pods": self.core.list_namespaced_pod,
            "replicasets": self.apps.list_namespaced_replica_set,
            "deployments": self.apps.list_namespaced_deployment,
        }
        w = watch.Watch()
        kwargs: dict[str, Any] = {**selectors, "timeout_seconds": timeout_s}
        if since:
            kwargs["resource_version"] = since
        try:
            for _event in w.stream(lists[plural], self.namespace, **kwargs):
                w.stop()
                break
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: our version is too old; the caller re-lists
                raise api_error(exc, f"watch {plural}", self.namespace) from exc

    def pod_log(self, pod: str, container: str, previous: bool, lines: int = 30) -> str:
        """The last `lines` of a container's log (its previous run if `previous`)."""
        try:
            return str(
                self.core.read_namespaced_pod_log(
                    pod, self.namespace, container=container, previous=previous, tail_lines=lines
                )
            )
        except ApiException as exc:
            return f"(log unavailable: {exc.status} {_status_message(exc)})"

    def secret_value(self, name: str, key: str) -> str:
        """The decoded value of `key` in Secret `name`."""
        self.require_secret(name, key)
        secret = self.core.read_namespaced_secret(name, self.namespace)
        return base64.b64decode(secret.data[key]).decode().strip()

    def require_secret(self, name: str, key: str) -> None:
        """KubernetesNotFoundError (with the command to create it) unless `name` has `key`."""
        create = (
            f"kubectl -n {self.namespace} create secret generic {name} "
            f"--from-literal={key}=$(openssl rand -hex 24)"
        )
        try:
            secret = self._call(
                f"read Secret/{name}",
                "Secret",
                self.core.read_namespaced_secret,
                name,
                self.namespace,
            )
        except KubernetesNotFoundError as exc:
            raise KubernetesNotFoundError(
                f"Secret {name!r} (the API key) is missing in namespace {self.namespace!r}: "
                f"create it: {create}"
            ) from exc
        if key not in (secret.data or {}):
            raise KubernetesNotFoundError(
                f"Secret {name!r} has no key {key!r} (has {sorted(secret.data or {})}): "
                f"recreate it: {create}, or set api_key_secret_key in the overlay"
            )
