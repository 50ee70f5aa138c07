"""The rendered manifests: valid for the pinned Kubernetes version and the vendored CRD
schemas, and shaped the way the serving image needs (probes, limits, non-root, volumes)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.errors import SpecError
from infra.k8s import render
from infra.k8s.render import (
    base,
    label_value,
    rbac,
    render_inference_service,
    render_release,
    render_route,
)
from infra.k8s.validate import K8S_VERSION, ManifestError, validate, validate_all
from infra.k8s.values import OVERLAYS, Gateway, K8sValues, load_overlay
from infra.targets.base import Variant

STABLE = Variant(
    "canary", "reg.example/serving:v1", "tiny-chat", "1", "tiny-chat-20261122t0800z-a1"
)
CANARY = Variant(
    "canary", "reg.example/serving:v2", "tiny-chat", "2", "tiny-chat-20261122t0900z-b2"
)
OVERLAY_NAMES = sorted(p.stem for p in OVERLAYS.glob("*.yaml"))
Doc = dict[str, Any]


def by_kind(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    return next(d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"]))


def pod_spec(docs: list[Doc], name: str = "canaryflow-a") -> Doc:
    spec: Doc = by_kind(docs, "Deployment", name)["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
@pytest.mark.parametrize("percent", [None, 0, 100])
def test_every_overlay_and_state_validates(overlay: str, percent: int | None) -> None:
    values = load_overlay(overlay)
    canary = None if percent is None else CANARY
    docs = render_release(values, STABLE, canary, percent or 0) + rbac(values)
    assert validate_all(docs) == len(docs)


def test_the_base_files_themselves_validate() -> None:
    for path in sorted(render.BASE.glob("*.yaml")):
        validate_all(base(path.name))


def test_strictness_is_real_for_builtin_and_custom_kinds() -> None:
    values = load_overlay("gpu")
    docs = render_release(values, STABLE, CANARY, 10)
    deployment = by_kind(docs, "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["startupprobe"] = {}
    with pytest.raises(ManifestError, match="Deployment/canaryflow-a at spec/template"):
        validate(deployment)
    route = by_kind(docs, "HTTPRoute")
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 1_000_001
    with pytest.raises(ManifestError, match="weight"):
        validate(route)
    isvc = render_inference_service(values, CANARY, 10)
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = 101
    with pytest.raises(ManifestError, match="canaryTrafficPercent"):
        validate(isvc)
    isvc = render_inference_service(values, CANARY, 10)
    isvc["spec"]["predictor"]["containers"][0]["resources"]["requets"] = {}
    with pytest.raises(ManifestError, match="containers/0/resources"):
        validate(isvc)
    monitor = by_kind(docs, "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = "fifteen seconds"
    with pytest.raises(ManifestError, match="interval"):
        validate(monitor)


def test_serving_pod_probes_security_and_volumes() -> None:
    values = load_overlay("gpu")
    pod = pod_spec(render_release(values, STABLE))
    (c,) = pod["containers"]
    startup = c["startupProbe"]
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= values.cold_start_s
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {
        "/tmp",
        "/var/lib/canaryflow/capture",
        "/dev/shm",
        "/run/secrets/canaryflow",
    }
    shm = volumes[mounts["/dev/shm"]]["emptyDir"]
    assert shm["medium"] == "Memory"
    assert shm["sizeLimit"] == "4Gi"
    secret = volumes["api-key"]["secret"]
    assert secret["secretName"] == "canaryflow-api-key"
    assert secret["items"] == [{"key": "api-key", "path": "api-key"}]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["CANARYFLOW_SERVING_API_KEY_FILE"] == "/run/secrets/canaryflow/api-key"
    assert env["CANARYFLOW_SERVING_MODEL_VERSION"] == "1"
    assert env["CANARYFLOW_SERVING_GPU_MEMORY_UTILIZATION"] == "0.9"


def test_gpu_resources_tolerations_and_cpu_overlay_without_gpu() -> None:
    gpu = pod_spec(render_release(load_overlay("gpu"), STABLE))
    resources = gpu["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
    assert resources["limits"]["memory"] == "32Gi"
    assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    cpu = pod_spec(render_release(load_overlay("cpu"), STABLE))
    assert "nvidia.com/gpu" not in str(cpu)
    assert cpu["containers"][0]["resources"]["limits"] == {"memory": "4Gi", "cpu": "2"}


def test_slot_selectors_agree_and_the_role_stays_off_the_pods() -> None:
    docs = render_release(load_overlay("gpu"), STABLE, CANARY, 10)
    for slot in ("a", "b"):
        name = f"canaryflow-{slot}"
        want = {"app.kubernetes.io/instance": "canaryflow", "canaryflow.io/slot": slot}
        deployment = by_kind(docs, "Deployment", name)
        assert deployment["spec"]["selector"]["matchLabels"] == want
        assert by_kind(docs, "Service", name)["spec"]["selector"] == want
        assert by_kind(docs, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"] == want
        assert by_kind(docs, "ServiceMonitor", name)["spec"]["selector"]["matchLabels"] == want
        assert (
            by_kind(docs, "HorizontalPodAutoscaler", name)["spec"]["scaleTargetRef"]["name"] == name
        )
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert "canaryflow.io/role" not in pod_labels  # a promote must not restart pods
        assert deployment["metadata"]["labels"]["canaryflow.io/role"] in ("stable", "canary")
    monitor = by_kind(docs, "ServiceMonitor")
    assert "canaryflow.io/role" in monitor["spec"]["targetLabels"]


def test_hpa_scales_down_slowly_and_owns_replicas() -> None:
    docs = render_release(load_overlay("gpu"), STABLE)
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 900
    assert hpa["minReplicas"] == 2
    assert hpa["maxReplicas"] == 8
    assert hpa["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "vllm_num_requests_waiting"},
                "target": {"type": "AverageValue", "averageValue": "4"},
            },
        }
    ]
    assert "replicas" not in by_kind(docs, "Deployment")["spec"]
    cpu_docs = render_release(load_overlay("cpu"), STABLE)
    assert not [d for d in cpu_docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert by_kind(cpu_docs, "Deployment")["spec"]["replicas"] == 1
    assert by_kind(render_release(K8sValues(), STABLE), "HorizontalPodAutoscaler")["spec"][
        "metrics"
    ][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


def test_pdb_and_prometheus_scrape_annotations() -> None:
    docs = render_release(load_overlay("gpu"), STABLE)
    pdb = by_kind(docs, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    annotations = by_kind(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8000",
        "prometheus.io/path": "/metrics",
    }


def test_route_weights_parent_and_timeout() -> None:
    gateway = Gateway(name="edge", namespace="gateways", hostnames=["llm.example"])
    values = load_overlay("gpu").model_copy(update={"gateway": gateway})
    route = render_route(values, {"b": 10, "a": 90})
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "edge",
            "namespace": "gateways",
        }
    ]
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"], r["port"]) for r in refs] == [
        ("canaryflow-a", 90, 8000),
        ("canaryflow-b", 10, 8000),
    ]
    assert route["spec"]["hostnames"] == ["llm.example"]
    assert route["spec"]["rules"][0]["timeouts"] == {"request": "600s"}
    validate(route)


def test_kserve_rendering_carries_the_canary_percent() -> None:
    values = load_overlay("gpu-kserve")
    (canary,) = render_release(values, STABLE, CANARY, 10)
    predictor = canary["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["containers"][0]["image"] == CANARY.image
    assert canary["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    (promoted,) = render_release(values, CANARY)
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    validate_all([canary, promoted])


def test_label_values_are_made_valid_and_exact_facts_kept_in_annotations() -> None:
    odd = Variant("canary", "reg/x@sha256:" + "f" * 64, "Org/Model Name", "v1+build", "r" * 80)
    docs = render_release(load_overlay("cpu"), odd)
    deployment = by_kind(docs, "Deployment")
    labels = deployment["metadata"]["labels"]
    assert labels["canaryflow.io/model-name"] == "Org-Model-Name"
    assert labels["canaryflow.io/model-version"] == "v1-build"
    assert len(labels["canaryflow.io/release-id"]) == 63
    assert deployment["metadata"]["annotations"]["canaryflow.io/release-id"] == "r" * 80
    assert label_value("--x--") == "x"
    validate_all(docs)


def test_overlay_errors_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="use one of cpu, gpu, gpu-kserve"):
        load_overlay("tpu")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: canaryflow\ngpus: 1\nreplicaz: 3\n")
    with pytest.raises(SpecError, match="replicaz"):
        load_overlay(bad)
    bad.write_text("cold_start_s: 900\nprogress_deadline_s: 600\n")
    with pytest.raises(SpecError, match="progress_deadline_s must exceed cold_start_s"):
        load_overlay(bad)


def test_cli_output_passes_the_kubernetes_validate_cli(tmp_path: Path) -> None:
    args = [
        "--overlay",
        "gpu",
        "--image",
        "reg/s:1",
        "--model-name",
        "team-model",
        "--model-version",
        "1",
        "--canary-image",
        "reg/s:2",
        "--canary-version",
        "2",
        "--canary-percent",
        "25",
        "--rbac",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "infra.k8s.render", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
    ).stdout
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs].count("Deployment") == 2
    assert by_kind(docs, "RoleBinding")["subjects"][0]["namespace"] == "canaryflow"
    builtin = tmp_path / "builtin.yaml"
    custom = ("HTTPRoute", "ServiceMonitor")  # checked against the vendored schemas above
    builtin.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] not in custom]))
    cli = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert cli is not None
    result = subprocess.run(
        [cli, "--strict", "-k", K8S_VERSION, str(builtin)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed for resource deployment/canaryflow-b" in result.stdout + result.stderr


def test_a_pushed_image_is_pinned_by_digest_in_the_deployment() -> None:
    pinned = f"127.0.0.1:5000/canaryflow/serving@sha256:{'ab' * 32}"
    variant = Variant("stable", pinned, "tiny-chat", "1", "r1")
    docs = render_release(load_overlay("cpu"), variant)
    (container,) = pod_spec(docs)["containers"]
    assert container["image"] == pinned
    assert by_kind(docs, "Deployment")["metadata"]["annotations"]["canaryflow.io/image"] == pinned
    assert validate_all(docs) == len(docs)
