"""Settings of the Kubernetes target; field descriptions are the help, env CANARYFLOW_K8S_*.

    KubernetesTargetConfig()                                # overlay gpu, kubeconfig or in-cluster
    KubernetesTargetConfig(overlay="cpu", namespace="llm", context="kind-canaryflow")

In a Prefect Kubernetes work pool the release job sets CANARYFLOW_K8S_OVERLAY and
CANARYFLOW_K8S_NAMESPACE and runs in-cluster as the canaryflow-release ServiceAccount.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.k8s.values import K8sValues, load_overlay


class KubernetesTargetConfig(BaseSettings):
    """Which cluster, namespace and overlay; how long to wait and how to judge failures."""

    model_config = SettingsConfigDict(env_prefix="CANARYFLOW_K8S_", extra="forbid", frozen=True)

    overlay: str = Field(
        "gpu", description="Overlay name (infra/k8s/overlays/NAME.yaml) or a YAML file path."
    )
    values: K8sValues | None = Field(None, description="Values to use instead of the overlay.")
    namespace: str | None = Field(None, description="Namespace; unset: the overlay's.")
    kubeconfig: Path | None = Field(
        None, description="Kubeconfig file; unset: in-cluster when in a pod, else ~/.kube/config."
    )
    context: str | None = Field(None, description="Kubeconfig context; unset: the current one.")
    field_manager: str = Field("canaryflow", description="Server-side apply field manager.")
    router_url: str | None = Field(
        None,
        description="URL clients use (the Gateway's); unset: read from the Gateway's status.",
    )
    watch_s: int = Field(10, ge=1, le=300, description="Pod watch window between re-checks.")
    ready_timeout_s: float | None = Field(
        None, gt=0, description="Hard wait for Ready; unset: progress_deadline_s + 60."
    )
    crashloop_restarts: int = Field(
        2, ge=1, description="Restarts in CrashLoopBackOff after which a deploy fails."
    )
    slot_free_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Wait for a removed variant's pods to terminate before reusing its slot; "
        "unset: the overlay's termination_grace_s + 60.",
    )
    drain_s: float = Field(
        10, ge=0, description="Wait after a backend leaves the route before its pods are removed."
    )

    def resolved_values(self) -> K8sValues:
        values = self.values or load_overlay(_overlay_ref(self.overlay))
        if self.namespace is not None:
            values = values.model_copy(update={"namespace": self.namespace})
        return values

    def resolved_ready_timeout_s(self, values: K8sValues) -> float:
        return self.ready_timeout_s or values.progress_deadline_s + 60.0

    def resolved_slot_free_timeout_s(self, values: K8sValues) -> float:
        return self.slot_free_timeout_s or values.termination_grace_s + 60.0


def _overlay_ref(overlay: str) -> str | Path:
    return Path(overlay) if overlay.endswith((".yaml", ".yml")) else overlay


def load_client(config: KubernetesTargetConfig) -> Any:
    """An ApiClient for the configured cluster: kubeconfig if given/present, else in-cluster."""
    from kubernetes import client
    from kubernetes import config as kube_config

    from infra.errors import ClusterUnavailableError

    configuration = client.Configuration()
    try:
        if config.kubeconfig is None and config.context is None and _in_cluster():
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            kube_config.load_kube_config(
                config_file=str(config.kubeconfig) if config.kubeconfig else None,
                context=config.context,
                client_configuration=configuration,
            )
    except (kube_config.ConfigException, OSError) as exc:
        raise ClusterUnavailableError(
            f"no Kubernetes credentials ({exc}): set CANARYFLOW_K8S_KUBECONFIG / _CONTEXT, or "
            "run in a pod with a ServiceAccount"
        ) from exc
    return client.ApiClient(configuration)


def _in_cluster() -> bool:
    import os

    return "KUBERNETES_SERVICE_HOST" in os.environ
