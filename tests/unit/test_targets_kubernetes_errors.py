"""Failure states of the Kubernetes target: each ends in a named error that says what to do.

Played back by FakeCluster the way a real API server reports them: pod container states,
Deployment conditions, and Status bodies of refused calls.
"""

from __future__ import annotations

import itertools

import pytest
from kubernetes import client

from infra.errors import (
    ClusterUnavailableError,
    ClusterUnsupportedError,
    CrashLoopError,
    DeployError,
    ImagePullError,
    KubernetesForbiddenError,
    KubernetesNotFoundError,
    QuotaExceededError,
    RolloutTimeoutError,
    SpecError,
)
from infra.targets.base import Variant
from infra.targets.kubernetes import KubernetesTarget
from infra.targets.kubernetes_config import KubernetesTargetConfig
from infra.targets.kubernetes_fake import FakeCluster

IMAGE = "reg.example/serving:v2"
FORBIDDEN = (
    'deployments.apps "canaryflow-b" is forbidden: User "system:serviceaccount:canaryflow:'
    'default" cannot patch resource "deployments" in API group "apps" in the namespace '
    '"canaryflow"'
)
TRACEBACK = (
    "INFO 11-22 08:00:01 loading model /models/model\n"
    "Traceback (most recent call last):\n"
    "ValueError: head_dim 16 is not supported by the attention backend\n"
)


def variant(version: str) -> Variant:
    return Variant("canary", f"reg.example/serving:v{version}", "tiny-chat", version, f"r{version}")


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add_secret("canaryflow-api-key", {"api-key": "s3cret"})
    return c


def make(cluster: FakeCluster, **kw: object) -> KubernetesTarget:
    config = KubernetesTargetConfig(overlay="gpu", router_url="http://gw", **kw)  # type: ignore[arg-type]
    return KubernetesTarget(config, api_client=cluster.api_client(), sleep=lambda _s: None)


def with_stable(cluster: FakeCluster) -> KubernetesTarget:
    target = make(cluster)
    target.deploy(variant("1"))
    return target


def assert_canary_cleaned_up(cluster: FakeCluster) -> None:
    assert cluster.live("deployments") == ["canaryflow-a"]
    assert cluster.names("services") == ["canaryflow-a"]
    route = cluster.get("httproutes", "canaryflow")
    assert route is not None
    assert [r["name"] for r in route["spec"]["rules"][0]["backendRefs"]] == ["canaryflow-a"]


def test_crash_loop_names_exit_state_and_quotes_the_previous_log(cluster: FakeCluster) -> None:
    target = with_stable(cluster)
    cluster.behave(IMAGE, "crashloop", log=TRACEBACK)
    with pytest.raises(CrashLoopError) as info:
        target.deploy(variant("2"))
    message = str(info.value)
    assert "CrashLoopBackOff after 2 restarts" in message
    assert "last exit code 1 (Error)" in message
    assert "head_dim 16 is not supported" in message
    (log_call,) = cluster.calls("GET", "/log")
    assert log_call.query["previous"] == "True"
    assert log_call.query["container"] == "serving"
    assert_canary_cleaned_up(cluster)


def test_oom_killed_says_to_raise_the_memory_limit(cluster: FakeCluster) -> None:
    target = with_stable(cluster)
    cluster.behave(IMAGE, "oom")
    with pytest.raises(CrashLoopError, match=r"exit code 137 \(OOMKilled\).*memory_limit"):
        target.deploy(variant("2"))


def test_image_pull_failure_is_reported_at_once_with_the_registry_message(
    cluster: FakeCluster,
) -> None:
    target = with_stable(cluster)
    cluster.behave(IMAGE, "imagepull")
    with pytest.raises(ImagePullError, match=r"ErrImagePull.*not found.*image_pull_secrets"):
        target.deploy(variant("2"))
    rollout = [
        r for r in cluster.calls("GET", "/pods") if "slot=b,pod-" in r.query["labelSelector"]
    ]
    assert len(rollout) == 1  # failed on the first look: no waiting for a deadline
    assert_canary_cleaned_up(cluster)


def test_quota_exceeded_on_pod_creation(cluster: FakeCluster) -> None:
    target = with_stable(cluster)
    cluster.behave(IMAGE, "quota")
    with pytest.raises(QuotaExceededError, match=r"exceeded quota: gpu-quota.*Lower cpu"):
        target.deploy(variant("2"))
    assert_canary_cleaned_up(cluster)


def test_quota_exceeded_on_object_creation(cluster: FakeCluster) -> None:
    target = with_stable(cluster)
    cluster.fail(
        "PATCH",
        "services",
        403,
        'services "canaryflow-b" is forbidden: exceeded '
        "quota: svc-quota, requested: services=1, used: services=4, limited: services=4",
    )
    with pytest.raises(QuotaExceededError, match=r"apply Service/canaryflow-b.*ResourceQuota"):
        target.deploy(variant("2"))
    assert_canary_cleaned_up(cluster)  # the Deployment applied before the refusal is gone


def test_unschedulable_pods_hit_the_progress_deadline_with_the_schedulers_reason(
    cluster: FakeCluster,
) -> None:
    target = with_stable(cluster)
    cluster.behave(IMAGE, "unschedulable")
    with pytest.raises(RolloutTimeoutError) as info:
        target.deploy(variant("2"))
    assert "progress deadline (1800 s)" in str(info.value)
    assert "Insufficient nvidia.com/gpu" in str(info.value)
    assert_canary_cleaned_up(cluster)


def test_a_rollout_that_never_reports_is_cut_by_the_targets_own_deadline(
    cluster: FakeCluster,
) -> None:
    target = with_stable(cluster)
    cluster.behave(IMAGE, "slow")
    ticks = itertools.count(0, 30.0)
    config = KubernetesTargetConfig(overlay="gpu", router_url="http://gw", ready_timeout_s=100)
    target = KubernetesTarget(
        config, api_client=cluster.api_client(), clock=lambda: next(ticks), sleep=lambda _s: None
    )
    with pytest.raises(RolloutTimeoutError, match=r"not Ready after 100 s.*ContainerCreating"):
        target.deploy(variant("2"))


def test_forbidden_names_the_call_and_the_role_to_grant(cluster: FakeCluster) -> None:
    target = with_stable(cluster)
    cluster.fail("PATCH", "deployments", 403, FORBIDDEN)
    with pytest.raises(KubernetesForbiddenError) as info:
        target.deploy(variant("2"))
    assert "apply Deployment/canaryflow-b in namespace 'canaryflow' is forbidden" in str(info.value)
    assert "infra/k8s/base/rbac.yaml" in str(info.value)


def test_missing_namespace(cluster: FakeCluster) -> None:
    target = make(cluster, namespace="elsewhere")
    with pytest.raises(KubernetesNotFoundError, match=r"kubectl create namespace elsewhere"):
        target.deploy(variant("1"))


def test_missing_gateway_api_crds_say_what_to_install(cluster: FakeCluster) -> None:
    cluster.uninstall("gateway.networking.k8s.io")
    with pytest.raises(
        ClusterUnsupportedError,
        match=r"gateway.networking.k8s.io/v1 \(router: httproute\): install the Gateway API CRDs",
    ):
        with_stable(cluster)
    assert cluster.writes() == []  # refused before anything was applied


def test_missing_api_key_secret_says_how_to_create_it() -> None:
    cluster = FakeCluster()
    with pytest.raises(KubernetesNotFoundError, match=r"kubectl -n canaryflow create secret"):
        make(cluster).deploy(variant("1"))
    assert cluster.writes() == []  # nothing applied
    cluster.add_secret("canaryflow-api-key", {"other": "x"})
    with pytest.raises(KubernetesNotFoundError, match=r"has no key 'api-key'"):
        make(cluster).deploy(variant("1"))


def test_unreachable_api_server_is_cluster_unavailable() -> None:
    configuration = client.Configuration(host="http://127.0.0.1:9")
    configuration.retries = False
    api = client.ApiClient(configuration)
    target = KubernetesTarget(KubernetesTargetConfig(overlay="cpu"), api_client=api)
    with pytest.raises(ClusterUnavailableError, match="does not answer"):
        target.status()


def test_no_credentials_is_cluster_unavailable(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = KubernetesTargetConfig(overlay="cpu", kubeconfig="/nonexistent/kubeconfig")  # type: ignore[arg-type]
    with pytest.raises(ClusterUnavailableError, match="CANARYFLOW_K8S_KUBECONFIG"):
        KubernetesTarget(config).status()


def test_a_kserve_overlay_is_rendered_not_driven() -> None:
    with pytest.raises(SpecError, match="render the KServe alternative"):
        KubernetesTarget(KubernetesTargetConfig(overlay="gpu-kserve"))


def test_other_api_failures_stay_deploy_errors(cluster: FakeCluster) -> None:
    target = with_stable(cluster)
    target.deploy(variant("2"))
    cluster.fail("PATCH", "httproutes", 409, "Operation cannot be fulfilled: conflict")
    with pytest.raises(DeployError, match=r"apply HTTPRoute/canaryflow .*409"):
        target.set_weights(10)
