"""The overlay values of the Kubernetes manifests: one typed object, field docs are the help.

    values = load_overlay("gpu")                      # infra/k8s/overlays/gpu.yaml
    values = load_overlay(Path("my-cluster.yaml"))    # your own overlay file
    values.model_copy(update={"namespace": "llm"})

An overlay file is YAML with these fields; anything unknown is an error (a typo in an
overlay must not silently fall back to a default). infra/k8s/render.py turns values plus a
variant into manifests; infra/targets/kubernetes.py applies them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from infra.errors import SpecError

OVERLAYS = Path(__file__).parent / "overlays"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
STARTUP_PERIOD_S = 10  # the base startupProbe's periodSeconds


class _Values(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Autoscaling(_Values):
    """The HorizontalPodAutoscaler of each variant."""

    enabled: bool = Field(True, description="Render an HPA; the Deployment then omits replicas.")
    min_replicas: int = Field(1, ge=1, description="Fewest replicas per variant.")
    max_replicas: int = Field(4, ge=1, description="Most replicas per variant.")
    cpu_utilization: int | None = Field(
        70, ge=1, le=100, description="Target average CPU utilisation (%); unset: no CPU metric."
    )
    custom_metric: str | None = Field(
        None,
        description="Per-pod custom metric to scale on (e.g. vllm_num_requests_waiting, "
        "served by prometheus-adapter); unset: none.",
    )
    custom_metric_target: str = Field("4", description="Average value of custom_metric per pod.")
    scale_down_window_s: int = Field(
        600, ge=0, le=3600, description="Scale-down stabilisation window (seconds)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.min_replicas must not exceed max_replicas")
        if self.enabled and self.cpu_utilization is None and self.custom_metric is None:
            raise ValueError("autoscaling needs cpu_utilization or custom_metric (or enabled: no)")
        return self


class Gateway(_Values):
    """The Gateway the HTTPRoute attaches to (installed by the cluster admin)."""

    name: str = Field("canaryflow", pattern=DNS_LABEL, description="Gateway name.")
    namespace: str | None = Field(
        None, pattern=DNS_LABEL, description="Gateway namespace; unset: the route's own."
    )
    section_name: str | None = Field(None, description="Listener of the Gateway to bind to.")
    hostnames: list[str] = Field(default_factory=list, description="Hostnames the route serves.")


class K8sValues(_Values):
    """Everything that differs between clusters; the rest lives in infra/k8s/base/."""

    name: str = Field(
        "canaryflow",
        pattern=r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$",
        description="Instance name: prefixes every object (NAME-a, NAME-b, route NAME).",
    )
    namespace: str = Field("canaryflow", pattern=DNS_LABEL, description="Target namespace.")
    router: Literal["httproute", "kserve"] = Field(
        "httproute",
        description="Traffic split: Gateway API HTTPRoute weights (what the target drives) "
        "or a KServe InferenceService's canaryTrafficPercent (rendering only).",
    )
    replicas: int = Field(1, ge=1, description="Replicas per variant when autoscaling is off.")
    cpu: str = Field("4", description="CPU request per replica.")
    cpu_limit: str | None = Field(None, description="CPU limit; unset: none (no throttling).")
    memory: str = Field("24Gi", description="Memory request per replica.")
    memory_limit: str | None = Field("32Gi", description="Memory limit; unset: the request.")
    gpus: int = Field(1, ge=0, le=8, description="GPUs per replica (0 for the cpu image).")
    gpu_resource: str = Field("nvidia.com/gpu", description="Extended resource name of a GPU.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod nodeSelector.")
    runtime_class: str | None = Field(None, description="Pod runtimeClassName (e.g. nvidia).")
    shm_size: str = Field(
        "2Gi", description="Shared memory (emptyDir, medium Memory, at /dev/shm); vLLM needs ≥ 1Gi."
    )
    tmp_size: str = Field("8Gi", description="Scratch emptyDir at /tmp (HOME, compile caches).")
    capture_size: str = Field("1Gi", description="Capture directory emptyDir.")
    cold_start_s: int = Field(
        1200, ge=30, description="Model load + warmup budget: sizes the startupProbe."
    )
    progress_deadline_s: int = Field(
        1800, ge=60, description="Deployment progressDeadlineSeconds; the target waits this long."
    )
    termination_grace_s: int = Field(60, ge=0, description="SIGTERM→SIGKILL grace per pod.")
    api_key_secret: str = Field(
        "canaryflow-api-key", pattern=DNS_LABEL, description="Secret with the API key."
    )
    api_key_secret_key: str = Field("api-key", description="Key inside api_key_secret.")
    service_account: str = Field(
        "canaryflow-serving", pattern=DNS_LABEL, description="ServiceAccount of the pods."
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list, description="Secrets for a private registry."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Images are content-addressed tags: IfNotPresent is safe."
    )
    container_port: int = Field(8000, ge=1, le=65535, description="Port the image listens on.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra serving env (CANARYFLOW_SERVING_* settings)."
    )
    pdb_max_unavailable: int = Field(1, ge=1, description="PodDisruptionBudget maxUnavailable.")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Per-variant HPA.")
    gateway: Gateway = Field(default_factory=Gateway, description="HTTPRoute parent.")
    request_timeout: str = Field(
        "600s", pattern=r"^([0-9]{1,5}(h|m|s|ms)){1,4}$", description="HTTPRoute request timeout."
    )
    service_monitor: bool = Field(True, description="Render a ServiceMonitor per variant.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels everywhere.")

    @model_validator(mode="after")
    def _deadline(self) -> K8sValues:
        if self.progress_deadline_s <= self.cold_start_s:
            raise ValueError("progress_deadline_s must exceed cold_start_s (the startup budget)")
        return self

    @property
    def startup_failure_threshold(self) -> int:
        """startupProbe failures allowed so that the probe covers `cold_start_s`."""
        return math.ceil(self.cold_start_s / STARTUP_PERIOD_S)


def load_overlay(overlay: str | Path) -> K8sValues:
    """Values of a named overlay (infra/k8s/overlays/NAME.yaml) or of a YAML file."""
    path = Path(overlay) if isinstance(overlay, Path) else OVERLAYS / f"{overlay}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in OVERLAYS.glob("*.yaml")))
        raise SpecError(f"no overlay {overlay!s} ({path}): use one of {known} or a file path")
    data = yaml.safe_load(path.read_text()) or {}
    try:
        return K8sValues.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"overlay {path} is invalid: {exc}") from exc
