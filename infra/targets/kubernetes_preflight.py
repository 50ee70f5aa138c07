"""Before the first apply: does this API server serve what the overlay's manifests need?

    requirements(values)                  # [Need("apps/v1", "deployments", ...), ...]
    check_cluster(api, values, "llm")     # (1, 30); ClusterUnsupportedError naming what to install

Reads the server version (/version) and the API groups it serves (/apis, then the resource
list of each custom group/version), the same discovery kubectl does. A cluster that lacks
any of them is refused before anything is written, with every gap in one message: applying
first would leave a half-written slot (the Deployment in, its HPA refused), and an old
server refuses fields the Deployment uses (`lifecycle.preStop.sleep` before 1.30).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infra.errors import ClusterUnavailableError, ClusterUnsupportedError
from infra.k8s.values import K8sValues
from infra.targets.kubernetes_api import CRD_HINTS, api_error

# The Deployment's preStop `sleep` action is on by default from 1.30 (beta; alpha in 1.29).
MIN_SERVER = (1, 30)
MIN_REASON = "the Deployment's lifecycle.preStop.sleep (on by default from 1.30)"


@dataclass(frozen=True)
class Need:
    """One API the rendered objects use, and what to do when it is missing."""

    group_version: str
    resource: str
    why: str

    @property
    def hint(self) -> str:
        group = self.group_version.split("/")[0]
        return CRD_HINTS.get(group, f"install what serves {self.group_version}")


def requirements(values: K8sValues) -> list[Need]:
    """What the overlay's objects need from the server, in apply order."""
    needs = [
        Need("apps/v1", "deployments", "the variants' Deployments"),
        Need("policy/v1", "poddisruptionbudgets", "the PodDisruptionBudget of each variant"),
    ]
    if values.autoscaling.enabled:
        needs.append(Need("autoscaling/v2", "horizontalpodautoscalers", "autoscaling.enabled"))
    if values.service_monitor:
        needs.append(Need("monitoring.coreos.com/v1", "servicemonitors", "service_monitor"))
    if values.router == "httproute":
        needs.append(Need("gateway.networking.k8s.io/v1", "httproutes", "router: httproute"))
    else:
        needs.append(Need("serving.kserve.io/v1beta1", "inferenceservices", "router: kserve"))
    return needs


def server_version(info: Any) -> tuple[int, int]:
    """(major, minor) from /version; managed clusters write minors like "30+"."""
    major, minor = (re.sub(r"\D", "", str(x)) for x in (info.major, info.minor))
    if not major or not minor:
        found = re.match(r"v?(\d+)\.(\d+)", str(info.git_version or ""))
        if found is None:
            raise ClusterUnsupportedError(f"cannot read the server version from {info}")
        major, minor = found.groups()
    return int(major), int(minor)


def check_cluster(api: client.ApiClient, values: K8sValues, namespace: str) -> tuple[int, int]:
    """The server's (major, minor); ClusterUnsupportedError unless it serves all `values` need."""
    try:
        version = server_version(client.VersionApi(api).get_code())
        groups = client.ApisApi(api).get_api_versions().groups or []
        served = {v.group_version for g in groups for v in g.versions or []}
        missing: list[str] = []
        if version < MIN_SERVER:
            missing.append(
                f"server {'.'.join(map(str, version))} is older than "
                f"{'.'.join(map(str, MIN_SERVER))}, which {MIN_REASON} needs: upgrade the cluster"
            )
        for need in requirements(values):
            if need.group_version not in served:
                missing.append(f"{need.group_version} ({need.why}): {need.hint}")
            elif "." in need.group_version.split("/")[0]:
                group, version_name = need.group_version.split("/")
                found = client.CustomObjectsApi(api).get_api_resources(group, version_name)
                if need.resource not in {r.name for r in found.resources or []}:
                    missing.append(f"{need.resource}.{group} ({need.why}): {need.hint}")
    except ApiException as exc:
        raise api_error(exc, "read the API server's discovery", namespace) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterUnavailableError(
            f"read the API server's version: it does not answer ({exc}); check the kubeconfig "
            "context, the network path to the cluster, and that it is up"
        ) from exc
    if missing:
        raise ClusterUnsupportedError(
            f"the cluster cannot serve the overlay's objects for {values.name!r} in namespace "
            f"{namespace!r} (nothing was changed): " + "; ".join(missing)
        )
    return version
