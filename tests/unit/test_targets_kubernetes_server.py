"""Regressions from driving the Kubernetes target against a real kube-apiserver (issue 16).

Each test plays a habit of a real server that the fake used to lack (lingering ReplicaSets
and terminating pods after a delete, plain-text 404 for an API group nothing serves,
Deployment status trailing its pods, an old server) and fails on the target before the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import ClusterUnsupportedError, CrashLoopError, DeployError, ImagePullError
from infra.k8s.render import rbac
from infra.k8s.values import load_overlay
from infra.registry import CHAMPION, FakeRegistry
from infra.targets.base import Variant
from infra.targets.kubernetes import KubernetesTarget
from infra.targets.kubernetes_config import KubernetesTargetConfig
from infra.targets.kubernetes_fake import PATH, FakeCluster
from infra.targets.kubernetes_preflight import requirements
from infra.targets.reconcile import reconcile


def variant(version: str) -> Variant:
    return Variant("canary", f"reg.example/serving:v{version}", "tiny-chat", version, f"r{version}")


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add_secret("canaryflow-api-key", {"api-key": "s3cret"})
    return c


def make(cluster: FakeCluster, **kw: object) -> KubernetesTarget:
    config = KubernetesTargetConfig(overlay="gpu", router_url="http://gw", **kw)  # type: ignore[arg-type]
    return KubernetesTarget(
        config, api_client=cluster.api_client(), clock=cluster.clock, sleep=lambda _s: None
    )


def weights(cluster: FakeCluster) -> dict[str, int]:
    route = cluster.get("httproutes", "canaryflow")
    assert route is not None
    return {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}


@pytest.mark.parametrize(
    ("bad", "error"), [("crashloop", CrashLoopError), ("imagepull", ImagePullError)]
)
def test_a_good_model_is_not_judged_by_the_pods_its_failed_predecessor_left(
    cluster: FakeCluster, bad: str, error: type[DeployError]
) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    cluster.behave("reg.example/serving:v4", bad)  # type: ignore[arg-type]
    with pytest.raises(error):
        target.deploy(variant("4"))
    # v4's ReplicaSet and pods linger (a real server deletes in the background / gracefully)
    assert any(p.startswith("canaryflow-b-") for p in cluster.names("pods"))
    endpoint = target.deploy(variant("5"))  # a good model into the same slot
    assert endpoint.role == "canary"
    images = {p["spec"]["containers"][0]["image"] for p in cluster.pods.values()}
    assert images == {"reg.example/serving:v1", "reg.example/serving:v5"}
    assert weights(cluster) == {"canaryflow-a": 100, "canaryflow-b": 0}


def test_a_rolled_back_canarys_pods_do_not_fail_the_next_release(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    target.deploy(variant("5"))
    cluster.behave("reg.example/serving:v5", "crashloop")  # it went bad under load
    target.rollback()
    assert target.deploy(variant("2")).role == "canary"
    assert target.status().canary is not None


def test_a_slot_is_emptied_in_the_foreground_before_it_is_reused(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    target.deploy(variant("2"))
    target.rollback()
    (delete,) = [r for r in cluster.calls("DELETE", "/deployments/canaryflow-b")]
    assert delete.query["propagationPolicy"] == "Foreground"
    target.deploy(variant("3"))
    requests = cluster.requests
    deleted = requests.index(delete)
    reapplied = next(
        i
        for i, r in enumerate(requests)
        if i > deleted and r.method == "PATCH" and r.path.endswith("/deployments/canaryflow-b")
    )
    watched_gone = [
        r
        for r in requests[deleted:reapplied]
        if r.query.get("watch") == "True" and "slot=b" in r.query.get("labelSelector", "")
    ]
    assert watched_gone  # it waited for v2's pods to terminate before applying v3
    assert cluster.live("deployments") == ["canaryflow-a", "canaryflow-b"]


def test_a_crd_missing_at_apply_time_names_the_group_and_leaves_no_half_deploy(
    cluster: FakeCluster,
) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    cluster.uninstall("gateway.networking.k8s.io")  # answered with plain-text 404 from now on
    with pytest.raises(ClusterUnsupportedError) as info:
        target.deploy(variant("2"))
    message = str(info.value)
    assert "gateway.networking.k8s.io/v1" in message
    assert "install the Gateway API CRDs" in message
    assert "create namespace" not in message
    assert cluster.live("deployments") == ["canaryflow-a"]  # the canary slot was cleaned up


def test_status_without_a_route_reports_the_stable_settled(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    cluster.remove("httproutes", "canaryflow")
    state = target.status()
    assert state.canary is None
    assert state.canary_percent == 0
    assert state.settled
    assert state.router_url is None
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    registry = FakeRegistry()
    registry.register("tiny-chat", tmp_path / "m")
    registry.set_alias("tiny-chat", CHAMPION, "1")
    assert reconcile(make(cluster), registry, "tiny-chat").action == "none"


def test_a_canary_deployed_while_the_route_is_missing_gets_no_traffic(
    cluster: FakeCluster,
) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    cluster.remove("httproutes", "canaryflow")
    target.deploy(variant("2"))
    assert weights(cluster) == {"canaryflow-a": 100, "canaryflow-b": 0}


def test_deploy_returns_when_the_deployment_reports_ready_not_a_watch_window_later(
    cluster: FakeCluster,
) -> None:
    target = make(cluster, watch_s=10)
    target.deploy(variant("1"))
    assert cluster.clock() < 10  # pods Ready at 1 s, the Deployment's status just after
    watched = {r.path for r in cluster.calls("GET") if r.query.get("watch") == "True"}
    assert "/apis/apps/v1/namespaces/canaryflow/deployments" in watched


def test_an_old_server_is_refused_before_anything_is_written(cluster: FakeCluster) -> None:
    cluster.git_version = "v1.20.2"
    del cluster.served["policy/v1"], cluster.served["autoscaling/v2"]
    with pytest.raises(ClusterUnsupportedError) as info:
        make(cluster).deploy(variant("1"))
    message = str(info.value)
    assert "server 1.20 is older than 1.30" in message
    assert "policy/v1" in message
    assert "autoscaling/v2 (autoscaling.enabled)" in message
    assert "autoscaling.enabled: false" in message
    assert cluster.writes() == []


def test_missing_service_monitor_crd_says_how_to_do_without(cluster: FakeCluster) -> None:
    cluster.uninstall("monitoring.coreos.com")
    with pytest.raises(ClusterUnsupportedError, match=r"service_monitor: false"):
        make(cluster).deploy(variant("1"))
    assert cluster.writes() == []


def test_the_server_is_checked_once_per_target(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    target.deploy(variant("2"))
    assert len(cluster.calls("GET", "/version")) == 1
    assert target.server_version == (1, 30)


def test_requirements_follow_the_overlay() -> None:
    kserve = {n.group_version for n in requirements(load_overlay("gpu-kserve"))}
    assert "serving.kserve.io/v1beta1" in kserve
    assert "gateway.networking.k8s.io/v1" not in kserve
    gpu = {n.group_version for n in requirements(load_overlay("gpu"))}
    assert {"policy/v1", "autoscaling/v2", "gateway.networking.k8s.io/v1"} <= gpu


def test_every_call_of_a_release_is_granted_by_the_release_role(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    target.deploy(variant("2"))
    target.set_weights(25)
    target.rollback()
    target.deploy(variant("3"))
    target.promote()
    target.status()
    (role,) = [d for d in rbac(load_overlay("gpu")) if d["kind"] == "Role"]
    granted = {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
        for r in rule["resources"] for v in rule["verbs"]
    }  # fmt: skip
    for call in cluster.requests:
        m = PATH.match(call.path)
        if m is None:
            continue  # discovery (/version, /apis): every authenticated user may read it
        group = m["group"] or ""
        resource = m["plural"] + (f"/{m['sub']}" if m["sub"] else "")
        verb = {"PATCH": "patch", "DELETE": "delete"}.get(call.method) or (
            "watch" if call.query.get("watch") == "True" else "get" if m["name"] else "list"
        )
        assert (group, resource, verb) in granted, f"{call.method} {call.path} is not granted"


def test_the_fake_deletes_like_a_real_server(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    cluster.delete_deployment("canaryflow-a", "Background")
    assert cluster.get("deployments", "canaryflow-a") is None
    assert cluster.live("replicasets")  # garbage-collected later
    assert cluster.live("pods")  # the ReplicaSet still holds them
    cluster.advance()
    assert not cluster.live("replicasets")
    assert cluster.names("pods")  # terminating, still listed
    assert not cluster.live("pods")
    cluster.advance(2)
    assert cluster.names("pods") == []
    response = cluster.handle("GET", "/apis/serving.kserve.io/v1beta1/namespaces/canaryflow/"
                              "inferenceservices/x", {}, {}, None)  # fmt: skip
    assert (response.status, response.data) == (404, b"404 page not found\n")
    assert response.getheader("content-type", "").startswith("text/plain")
