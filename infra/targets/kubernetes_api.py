"""The Kubernetes target's calls to the API server, through the official client's typed APIs.

    cluster = Cluster(api_client, namespace="canaryflow")
    cluster.apply(manifest)                        # server-side apply, field manager canaryflow
    cluster.deployments("app.kubernetes.io/instance=canaryflow")
    cluster.relabel("Deployment", "canaryflow-b", {"canaryflow.io/role": "stable"})
    cluster.delete("Service", "canaryflow-a")      # absent already is fine

Every ApiException becomes a named DeployError (see `api_error`) whose message says which
call failed and what to do; a connection failure is ClusterUnavailableError.
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


def _status_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def api_error(exc: ApiException, action: str, namespace: str) -> DeployError:
    """The named error for a failed call; `action` says what was tried ("apply Deployment/x")."""
    message = _status_message(exc)
    where = f"{action} in namespace {namespace!r}"
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
        group = next((g for g in CRD_HINTS if g in action), None)
        if group is not None and "could not find the requested resource" in message:
            return KubernetesNotFoundError(f"{where}: {group} is not installed; {CRD_HINTS[group]}")
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

    def _call(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise api_error(exc, action, self.namespace) from exc
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
                action, fn, c.group, c.version, self.namespace, c.plural, name, doc, **opts
            )
        return self._call(action, self._typed(kind, "patch"), name, self.namespace, doc, **opts)

    def relabel(self, kind: str, name: str, labels: dict[str, str]) -> None:
        """Merge-patch labels (a role change), leaving every applied field alone."""
        body = {"metadata": {"labels": labels}}
        fn = self._typed(kind, "patch")
        action = f"relabel {kind}/{name}"
        self._call(
            action,
            fn,
            name,
            self.namespace,
            body,
            field_manager=self.field_manager,
            _content_type=MERGE,
        )

    def delete(self, kind: str, name: str) -> None:
        """Delete `kind/name`; one that is already gone is fine."""
        action = f"delete {self._what(kind, name)}"
        try:
            if kind in CUSTOM:
                c = CUSTOM[kind]
                fn = self.custom.delete_namespaced_custom_object
                self._call(action, fn, c.group, c.version, self.namespace, c.plural, name)
            else:
                self._call(action, self._typed(kind, "delete"), name, self.namespace)
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
                action, fn, c.group, c.version, namespace or self.namespace, c.plural, name
            )
            return cast(dict[str, Any], found)
        except KubernetesNotFoundError as exc:
            if "is not installed" in str(exc):
                raise
            return None

    def deployments(self, label_selector: str) -> list[client.V1Deployment]:
        fn = self.apps.list_namespaced_deployment
        found = self._call("list deployments", fn, self.namespace, label_selector=label_selector)
        return list(found.items)

    def read_deployment(self, name: str) -> client.V1Deployment | None:
        try:
            fn = self.apps.read_namespaced_deployment
            return self._call(f"read Deployment/{name}", fn, name, self.namespace)
        except KubernetesNotFoundError:
            return None

    def pods(self, label_selector: str) -> tuple[list[client.V1Pod], str]:
        """The pods matching `label_selector` and the list's resourceVersion (to watch from)."""
        fn = self.core.list_namespaced_pod
        found = self._call("list pods", fn, self.namespace, label_selector=label_selector)
        return list(found.items), str(found.metadata.resource_version or "")

    def wait_pod_change(self, label_selector: str, since: str, timeout_s: int) -> None:
        """Block until a matching pod changes after resourceVersion `since`, or `timeout_s`."""
        w = watch.Watch()
        kwargs: dict[str, Any] = {"label_selector": label_selector, "timeout_seconds": timeout_s}
        if since:
            kwargs["resource_version"] = since
        try:
            for _event in w.stream(self.core.list_namespaced_pod, self.namespace, **kwargs):
                w.stop()
                break
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: our version is too old; the caller re-lists
                raise api_error(exc, "watch pods", self.namespace) from exc

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
                f"read Secret/{name}", self.core.read_namespaced_secret, name, self.namespace
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
