"""Render the Kubernetes manifests: base YAML (infra/k8s/base/) + overlay values + a variant.

    values = load_overlay("gpu")
    render_variant(values, variant, slot="a", role="stable")   # Deployment, Service, HPA, PDB, SM
    render_route(values, {"a": 90, "b": 10})                   # the HTTPRoute with its weights
    render_inference_service(values, variant, canary_percent=10)  # the KServe alternative

    python -m infra.k8s.render --overlay gpu --image REG/serving:TAG --model-version 3 \
        | kubectl apply --server-side --field-manager canaryflow -f -

Why a renderer and not kustomize or Helm: a release needs per-release facts in the objects
(image digest, model version, release id as labels and env, route weights), which kustomize
can only take through generated kustomization files and Helm through a templating language
whose output is unchecked until rendered. Here the target and this CLI share one code path,
the values are a typed, validated object, the shape stays plain YAML a reviewer can read,
and the Prefect worker needs no kubectl, kustomize or helm binary.

Each variant lives in a *slot* (a or b) whose selector never changes; its role (stable,
canary) is a label patched at promote, so promoting never restarts a pod.
"""

from __future__ import annotations

import argparse
import copy
import functools
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from infra.k8s.values import K8sValues, load_overlay
from infra.targets.base import Role, Variant

BASE = Path(__file__).parent / "base"
Manifest = dict[str, Any]
Slot = Literal["a", "b"]
SLOTS: tuple[Slot, Slot] = ("a", "b")

PREFIX = "canaryflow.io"
TARGET_LABEL = "app.kubernetes.io/instance"
SLOT_LABEL = f"{PREFIX}/slot"
ROLE_LABEL = f"{PREFIX}/role"
MODEL_NAME_LABEL = f"{PREFIX}/model-name"
MODEL_VERSION_LABEL = f"{PREFIX}/model-version"
RELEASE_LABEL = f"{PREFIX}/release-id"
IMAGE_ANNOTATION = f"{PREFIX}/image"
CONTAINER = "serving"
ENV = "CANARYFLOW_SERVING_"
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]")


@functools.cache
def _base(name: str) -> tuple[Manifest, ...]:
    return tuple(d for d in yaml.safe_load_all((BASE / name).read_text()) if d)


def base(name: str) -> list[Manifest]:
    """Fresh copies of the documents in infra/k8s/base/NAME."""
    return copy.deepcopy(list(_base(name)))


def label_value(text: str) -> str:
    """`text` as a valid label value (≤ 63 chars of [A-Za-z0-9_.-], alphanumeric ends)."""
    return _NOT_LABEL.sub("-", text)[:63].strip("-_.")


def object_name(values: K8sValues, slot: Slot) -> str:
    """Name of every object of `slot` (Deployment, Service, HPA, PDB, ServiceMonitor)."""
    return f"{values.name}-{slot}"


def selector(values: K8sValues, slot: Slot) -> dict[str, str]:
    return {TARGET_LABEL: values.name, SLOT_LABEL: slot}


def variant_labels(values: K8sValues, variant: Variant, slot: Slot, role: str) -> dict[str, str]:
    """Labels of a slot's objects: immutable facts of the variant + its current role."""
    return {
        **values.labels,
        **selector(values, slot),
        ROLE_LABEL: role,
        MODEL_NAME_LABEL: label_value(variant.model_name),
        MODEL_VERSION_LABEL: label_value(variant.model_version),
        RELEASE_LABEL: label_value(variant.release_id),
    }


def variant_annotations(variant: Variant) -> dict[str, str]:
    """The exact facts (labels may be shortened); status() reads these."""
    return {
        IMAGE_ANNOTATION: variant.image,
        MODEL_NAME_LABEL: variant.model_name,
        MODEL_VERSION_LABEL: variant.model_version,
        RELEASE_LABEL: variant.release_id,
    }


def _meta(doc: Manifest, values: K8sValues, name: str, labels: Mapping[str, str]) -> Manifest:
    meta = doc["metadata"]
    meta["name"] = name
    meta["namespace"] = values.namespace
    meta["labels"] = {**meta.get("labels", {}), **labels}
    return doc


def _env(values: K8sValues, variant: Variant, role: str, base_env: list[Any]) -> list[Any]:
    env = {e["name"]: e["value"] for e in base_env}
    env.update(
        {
            f"{ENV}VARIANT": role,
            f"{ENV}MODEL_VERSION": variant.model_version,
            f"{ENV}SERVED_MODEL_NAME": variant.served_model_name,
            f"{ENV}PORT": str(values.container_port),
            **values.env,
            **variant.env,
        }
    )
    return [{"name": k, "value": v} for k, v in env.items()]


def _resources(values: K8sValues) -> Manifest:
    requests = {"cpu": values.cpu, "memory": values.memory}
    limits = {"memory": values.memory_limit or values.memory}
    if values.cpu_limit:
        limits["cpu"] = values.cpu_limit
    if values.gpus:  # extended resources: request must equal limit
        requests[values.gpu_resource] = limits[values.gpu_resource] = str(values.gpus)
    return {"requests": requests, "limits": limits}


def _volumes(values: K8sValues, volumes: list[Manifest]) -> list[Manifest]:
    sizes = {"tmp": values.tmp_size, "capture": values.capture_size, "dshm": values.shm_size}
    for volume in volumes:
        if volume["name"] in sizes:
            volume["emptyDir"]["sizeLimit"] = sizes[volume["name"]]
        elif "secret" in volume:
            volume["secret"]["secretName"] = values.api_key_secret
            volume["secret"]["items"][0]["key"] = values.api_key_secret_key
    return volumes


def _container(values: K8sValues, variant: Variant, role: str, c: Manifest) -> Manifest:
    c["image"] = variant.image
    c["env"] = _env(values, variant, role, c.get("env", []))
    c["resources"] = _resources(values)
    c["ports"][0]["containerPort"] = values.container_port
    return c


def deployment(values: K8sValues, variant: Variant, slot: Slot, role: Role) -> Manifest:
    (doc,) = base("deployment.yaml")
    labels = variant_labels(values, variant, slot, role)
    _meta(doc, values, object_name(values, slot), labels)
    doc["metadata"]["annotations"] = variant_annotations(variant)
    spec = doc["spec"]
    spec["progressDeadlineSeconds"] = values.progress_deadline_s
    if values.autoscaling.enabled:
        del spec["replicas"]  # the HPA owns it; applying it would undo every scale-up
    else:
        spec["replicas"] = values.replicas
    spec["selector"]["matchLabels"] = selector(values, slot)
    pod_labels = {k: v for k, v in labels.items() if k != ROLE_LABEL}  # role changes: no restart
    template = spec["template"]
    template["metadata"]["labels"] = {**template["metadata"]["labels"], **pod_labels}
    template["metadata"]["annotations"]["prometheus.io/port"] = str(values.container_port)
    pod = template["spec"]
    pod["serviceAccountName"] = values.service_account
    pod["terminationGracePeriodSeconds"] = values.termination_grace_s
    if values.node_selector:
        pod["nodeSelector"] = dict(values.node_selector)
    if values.runtime_class:
        pod["runtimeClassName"] = values.runtime_class
    if values.gpus:
        key = values.gpu_resource
        pod["tolerations"] = [{"key": key, "operator": "Exists", "effect": "NoSchedule"}]
    if values.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in values.image_pull_secrets]
    (container,) = pod["containers"]
    _container(values, variant, role, container)
    container["imagePullPolicy"] = values.image_pull_policy
    container["startupProbe"]["failureThreshold"] = values.startup_failure_threshold
    _volumes(values, pod["volumes"])
    return doc


def service(values: K8sValues, variant: Variant, slot: Slot, role: Role) -> Manifest:
    (doc,) = base("service.yaml")
    _meta(doc, values, object_name(values, slot), variant_labels(values, variant, slot, role))
    doc["spec"]["selector"] = selector(values, slot)
    doc["spec"]["ports"][0]["port"] = values.container_port
    return doc


def hpa(values: K8sValues, slot: Slot) -> Manifest:
    (doc,) = base("hpa.yaml")
    scaling = values.autoscaling
    _meta(doc, values, object_name(values, slot), {**values.labels, **selector(values, slot)})
    spec = doc["spec"]
    spec["scaleTargetRef"]["name"] = object_name(values, slot)
    spec["minReplicas"], spec["maxReplicas"] = scaling.min_replicas, scaling.max_replicas
    metrics: list[Manifest] = []
    if scaling.cpu_utilization is not None:
        cpu = spec["metrics"][0]
        cpu["resource"]["target"]["averageUtilization"] = scaling.cpu_utilization
        metrics.append(cpu)
    if scaling.custom_metric is not None:
        target = {"type": "AverageValue", "averageValue": scaling.custom_metric_target}
        metric = {"metric": {"name": scaling.custom_metric}, "target": target}
        metrics.append({"type": "Pods", "pods": metric})
    spec["metrics"] = metrics
    spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = scaling.scale_down_window_s
    return doc


def pdb(values: K8sValues, slot: Slot) -> Manifest:
    (doc,) = base("pdb.yaml")
    _meta(doc, values, object_name(values, slot), {**values.labels, **selector(values, slot)})
    doc["spec"]["maxUnavailable"] = values.pdb_max_unavailable
    doc["spec"]["selector"]["matchLabels"] = selector(values, slot)
    return doc


def service_monitor(values: K8sValues, slot: Slot) -> Manifest:
    (doc,) = base("servicemonitor.yaml")
    _meta(doc, values, object_name(values, slot), {**values.labels, **selector(values, slot)})
    doc["spec"]["selector"]["matchLabels"] = selector(values, slot)
    return doc


def render_variant(values: K8sValues, variant: Variant, slot: Slot, role: Role) -> list[Manifest]:
    """Every object of one variant in `slot`, in apply order (the Deployment first)."""
    docs = [deployment(values, variant, slot, role), service(values, variant, slot, role)]
    if values.autoscaling.enabled:
        docs.append(hpa(values, slot))
    docs.append(pdb(values, slot))
    if values.service_monitor:
        docs.append(service_monitor(values, slot))
    return docs


def render_route(values: K8sValues, weights: Mapping[Slot, int]) -> Manifest:
    """The HTTPRoute sending weights[slot] of traffic to each slot's Service (in slot order)."""
    (doc,) = base("httproute.yaml")
    _meta(doc, values, values.name, {**values.labels, TARGET_LABEL: values.name})
    spec = doc["spec"]
    parent = spec["parentRefs"][0]
    parent["name"] = values.gateway.name
    if values.gateway.namespace:
        parent["namespace"] = values.gateway.namespace
    if values.gateway.section_name:
        parent["sectionName"] = values.gateway.section_name
    if values.gateway.hostnames:
        spec["hostnames"] = list(values.gateway.hostnames)
    rule = spec["rules"][0]
    template = rule["backendRefs"][0]
    rule["backendRefs"] = [
        {**template, "name": object_name(values, s), "port": values.container_port, "weight": w}
        for s, w in sorted(weights.items())
    ]
    rule["timeouts"]["request"] = values.request_timeout
    return doc


def render_inference_service(
    values: K8sValues, variant: Variant, canary_percent: int | None
) -> Manifest:
    """The KServe alternative: `variant` as the latest revision at `canary_percent` (None: all)."""
    (doc,) = base("inferenceservice.yaml")
    labels = {
        **values.labels,
        TARGET_LABEL: values.name,
        **variant_labels(values, variant, "a", ""),
    }
    labels = {k: v for k, v in labels.items() if k not in (SLOT_LABEL, ROLE_LABEL)}
    _meta(doc, values, values.name, labels)
    annotations = doc["metadata"]["annotations"]
    annotations.update(variant_annotations(variant))
    annotations["serving.knative.dev/progress-deadline"] = f"{values.progress_deadline_s}s"
    predictor = doc["spec"]["predictor"]
    predictor["serviceAccountName"] = values.service_account
    predictor["minReplicas"] = values.autoscaling.min_replicas
    predictor["maxReplicas"] = values.autoscaling.max_replicas
    if canary_percent is None:
        del predictor["canaryTrafficPercent"]
    else:
        predictor["canaryTrafficPercent"] = canary_percent
    if values.node_selector:
        predictor["nodeSelector"] = dict(values.node_selector)
    (container,) = predictor["containers"]
    _container(values, variant, "canary" if canary_percent is not None else "stable", container)
    container["readinessProbe"]["httpGet"]["port"] = values.container_port
    _volumes(values, predictor["volumes"])
    return doc


def render_release(
    values: K8sValues, stable: Variant, canary: Variant | None = None, canary_percent: int = 0
) -> list[Manifest]:
    """A whole state: stable in slot a, an optional canary in slot b, and the router."""
    if values.router == "kserve":
        if canary is None:
            return [render_inference_service(values, stable, None)]
        return [render_inference_service(values, canary, canary_percent)]
    docs = render_variant(values, stable, "a", "stable")
    weights: dict[Slot, int] = {"a": 100}
    if canary is not None:
        docs += render_variant(values, canary, "b", "canary")
        weights = {"a": 100 - canary_percent, "b": canary_percent}
    return [*docs, render_route(values, weights)]


def rbac(values: K8sValues) -> list[Manifest]:
    """The pods' and the release flow's ServiceAccounts, Role and RoleBinding (base/rbac.yaml)."""
    docs = [_meta(d, values, d["metadata"]["name"], values.labels) for d in base("rbac.yaml")]
    for doc in docs:
        if doc["kind"] == "RoleBinding":
            doc["subjects"][0]["namespace"] = values.namespace
        if doc["kind"] == "Role":
            doc["rules"][3]["resourceNames"] = [values.api_key_secret]
    return docs


def to_yaml(docs: Sequence[Manifest]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the manifests of a first deploy (or a canary split) for kubectl apply."""
    parser = argparse.ArgumentParser(prog="python -m infra.k8s.render", description=__doc__)
    parser.add_argument("--overlay", default="gpu", help="overlay name or YAML file")
    parser.add_argument("--image", required=True, help="serving image (tag or digest)")
    parser.add_argument("--model-name", required=True, help="registered name (served as)")
    parser.add_argument("--model-version", required=True)
    parser.add_argument("--release-id", default="manual")
    parser.add_argument("--canary-image", help="also render a canary in slot b")
    parser.add_argument("--canary-version", help="the canary's model version")
    parser.add_argument("--canary-percent", type=int, default=0)
    parser.add_argument("--rbac", action="store_true", help="include base/rbac.yaml")
    args = parser.parse_args(argv)
    overlay = Path(args.overlay) if args.overlay.endswith((".yaml", ".yml")) else args.overlay
    values = load_overlay(overlay)
    stable = Variant("stable", args.image, args.model_name, args.model_version, args.release_id)
    canary = None
    if args.canary_image:
        version = args.canary_version or args.model_version
        canary = Variant("canary", args.canary_image, args.model_name, version, args.release_id)
    docs = render_release(values, stable, canary, args.canary_percent)
    if args.rbac:
        docs = rbac(values) + docs
    sys.stdout.write(to_yaml(docs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
