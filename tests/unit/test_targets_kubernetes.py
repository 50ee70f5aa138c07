"""The Kubernetes target's release lifecycle against FakeCluster (the client's REST boundary).

What is checked is what the API server would receive: methods, paths, server-side apply
(content type, fieldManager, force), bodies that pass the pinned schemas, and the order of
the writes that makes every step safe to repeat.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import CanaryUnhealthyError, DeployError, NoStableError, TargetBusyError
from infra.k8s.validate import validate_all
from infra.k8s.values import load_overlay
from infra.registry import CHAMPION, FakeRegistry
from infra.targets import make_target
from infra.targets.base import Variant
from infra.targets.kubernetes import KubernetesTarget
from infra.targets.kubernetes_config import KubernetesTargetConfig
from infra.targets.kubernetes_fake import FakeCluster
from infra.targets.reconcile import promote_release, reconcile

NS = "/namespaces/canaryflow"
DEPLOY_A = f"/apis/apps/v1{NS}/deployments/canaryflow-a"
DEPLOY_B = f"/apis/apps/v1{NS}/deployments/canaryflow-b"
SERVICE_A = f"/api/v1{NS}/services/canaryflow-a"
SERVICE_B = f"/api/v1{NS}/services/canaryflow-b"
ROUTE = f"/apis/gateway.networking.k8s.io/v1{NS}/httproutes/canaryflow"
SLOT_B_DELETES = [
    ("DELETE", f"/apis/monitoring.coreos.com/v1{NS}/servicemonitors/canaryflow-b"),
    ("DELETE", f"/apis/policy/v1{NS}/poddisruptionbudgets/canaryflow-b"),
    ("DELETE", f"/apis/autoscaling/v2{NS}/horizontalpodautoscalers/canaryflow-b"),
    ("DELETE", SERVICE_B),
    ("DELETE", DEPLOY_B),
]


def variant(version: str, release: str | None = None) -> Variant:
    return Variant(
        "canary",
        f"reg.example/serving:v{version}",
        "tiny-chat",
        version,
        release or f"tiny-chat-20261122t0800{version}z-abc12{version}",
    )


def make(cluster: FakeCluster, **kw: object) -> KubernetesTarget:
    config = KubernetesTargetConfig(overlay="gpu", **kw)  # type: ignore[arg-type]
    return KubernetesTarget(config, api_client=cluster.api_client(), sleep=lambda _s: None)


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add_secret("canaryflow-api-key", {"api-key": "s3cret"})
    c.add_gateway("canaryflow", "203.0.113.7")
    return c


def weights(cluster: FakeCluster) -> dict[str, int]:
    route = cluster.get("httproutes", "canaryflow")
    assert route is not None
    return {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}


def role(cluster: FakeCluster, name: str) -> str:
    d = cluster.get("deployments", name)
    assert d is not None
    return str(d["metadata"]["labels"]["canaryflow.io/role"])


def test_first_deploy_applies_the_slot_server_side_then_routes_all_traffic(
    cluster: FakeCluster,
) -> None:
    endpoint = make(cluster).deploy(variant("1"))
    assert endpoint.role == "stable"
    assert endpoint.url == "http://canaryflow-a.canaryflow.svc.cluster.local:8000"
    assert cluster.writes() == [
        ("PATCH", DEPLOY_A),
        ("PATCH", SERVICE_A),
        ("PATCH", f"/apis/autoscaling/v2{NS}/horizontalpodautoscalers/canaryflow-a"),
        ("PATCH", f"/apis/policy/v1{NS}/poddisruptionbudgets/canaryflow-a"),
        ("PATCH", f"/apis/monitoring.coreos.com/v1{NS}/servicemonitors/canaryflow-a"),
        ("PATCH", ROUTE),
    ]
    for call in cluster.calls("PATCH"):
        assert call.content_type == "application/apply-patch+yaml"
        assert call.query["fieldManager"] == "canaryflow"
        assert call.query["force"] == "True"
    (apply,) = cluster.calls("PATCH", DEPLOY_A)
    assert apply.body["metadata"]["annotations"]["canaryflow.io/image"] == "reg.example/serving:v1"
    assert apply.body["metadata"]["labels"]["canaryflow.io/role"] == "stable"
    assert "replicas" not in apply.body["spec"]  # the HPA owns it
    assert weights(cluster) == {"canaryflow-a": 100}
    # the secret was checked before anything was applied
    first_write = next(i for i, r in enumerate(cluster.requests) if r.method == "PATCH")
    secret_reads = cluster.calls("GET", "/secrets/canaryflow-api-key")
    assert secret_reads
    assert cluster.requests.index(secret_reads[0]) < first_write


def test_every_apply_body_sent_over_a_release_is_a_valid_manifest(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    target.deploy(variant("2"))
    target.set_weights(50)
    target.promote()
    applies = [r for r in cluster.calls("PATCH") if r.content_type.startswith("application/apply")]
    assert len(applies) == 15
    assert validate_all(r.body for r in applies) == 15
    relabels = [r for r in cluster.calls("PATCH") if r not in applies]
    assert {r.content_type for r in relabels} == {"application/merge-patch+json"}
    assert all(r.query["fieldManager"] == "canaryflow" for r in cluster.calls("PATCH"))


def test_rollout_is_watched_from_the_listed_resource_version(cluster: FakeCluster) -> None:
    make(cluster).deploy(variant("1"))
    lists = [r for r in cluster.calls("GET", "/pods") if "watch" not in r.query]
    watches = [r for r in cluster.calls("GET", "/pods") if r.query.get("watch") == "True"]
    assert lists
    assert watches
    rs = cluster.live("replicasets")[0]
    assert watches[0].query["labelSelector"] == (  # only the current ReplicaSet's pods
        "app.kubernetes.io/instance=canaryflow,canaryflow.io/slot=a,"
        f"pod-template-hash={rs.removeprefix('canaryflow-a-')}"
    )
    assert watches[0].query["resourceVersion"]
    assert int(watches[0].query["timeoutSeconds"]) <= 10


def test_canary_joins_the_route_at_zero_and_weights_move_live(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    assert target.deploy(variant("2")).role == "canary"
    assert weights(cluster) == {"canaryflow-a": 100, "canaryflow-b": 0}
    before = len(cluster.requests)
    target.set_weights(10)
    new_writes = [r for r in cluster.requests[before:] if r.method == "PATCH"]
    assert [r.path for r in new_writes] == [ROUTE]  # one apply of the route, nothing restarts
    assert weights(cluster) == {"canaryflow-a": 90, "canaryflow-b": 10}
    state = target.status()
    assert state.canary_percent == 10
    assert state.router_url == "http://203.0.113.7"
    assert state.stable is not None
    assert state.stable.model_version == "1"
    assert state.canary is not None
    assert state.canary.model_version == "2"
    assert state.canary.healthy
    assert state.stable.model_name == state.canary.model_name == variant("1").model_name


def test_promote_moves_traffic_then_labels_then_deletes_the_old_stable(
    cluster: FakeCluster,
) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    target.deploy(variant("2"))
    target.set_weights(25)
    before = len(cluster.requests)
    target.promote()
    writes = [(r.method, r.path) for r in cluster.requests[before:] if r.method != "GET"]
    assert writes[:5] == [
        ("PATCH", ROUTE),
        ("PATCH", DEPLOY_A),
        ("PATCH", SERVICE_A),
        ("PATCH", DEPLOY_B),
        ("PATCH", SERVICE_B),
    ]
    route_apply = cluster.calls("PATCH", ROUTE)[-2]
    assert {
        r["name"]: r["weight"] for r in route_apply.body["spec"]["rules"][0]["backendRefs"]
    } == {
        "canaryflow-a": 0,
        "canaryflow-b": 100,
    }
    relabel = cluster.calls("PATCH", DEPLOY_B)[-1]
    assert relabel.content_type == "application/merge-patch+json"
    assert relabel.body == {"metadata": {"labels": {"canaryflow.io/role": "stable"}}}
    assert writes[5] == ("PATCH", ROUTE)  # the route names only the new stable ...
    assert [w[1] for w in writes[6:]] == [p.replace("-b", "-a") for _, p in SLOT_B_DELETES]
    assert weights(cluster) == {"canaryflow-b": 100}
    assert cluster.live("deployments") == ["canaryflow-b"]
    state = target.status()
    assert state.settled
    assert state.stable is not None
    assert state.stable.model_version == "2"
    # the promoted Deployment was never re-applied: no new generation, no pod restart
    b = cluster.get("deployments", "canaryflow-b")
    assert b is not None
    assert b["metadata"]["generation"] == 1
    target.promote()  # idempotent
    assert target.status() == state


def test_rollback_and_next_release_reuses_the_free_slot(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    target.deploy(variant("2"))
    target.set_weights(50)
    before = len(cluster.requests)
    target.rollback()
    writes = [(r.method, r.path) for r in cluster.requests[before:] if r.method != "GET"]
    assert writes == [
        ("PATCH", ROUTE),
        ("PATCH", DEPLOY_B),
        ("PATCH", SERVICE_B),
        ("PATCH", ROUTE),
        *SLOT_B_DELETES,
    ]
    assert weights(cluster) == {"canaryflow-a": 100}
    assert target.status().settled
    target.rollback()  # idempotent
    assert target.deploy(variant("3")).url.startswith("http://canaryflow-b.")


def test_redeploy_is_a_noop_and_a_second_canary_is_refused(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    target.deploy(variant("2"))
    applies = len(cluster.calls("PATCH", DEPLOY_B))
    assert target.deploy(variant("2")).role == "canary"
    assert len(cluster.calls("PATCH", DEPLOY_B)) == applies
    with pytest.raises(TargetBusyError, match="promote or roll it back first"):
        target.deploy(variant("3"))


def test_weights_and_promote_guards(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    with pytest.raises(ValueError, match=r"0\.\.100"):
        target.set_weights(101)
    with pytest.raises(DeployError, match="no canary"):
        target.set_weights(5)
    target.set_weights(0)  # nothing to do, not an error
    target.deploy(variant("2"))
    cluster.behave("reg.example/serving:v2", "crashloop")
    with pytest.raises(CanaryUnhealthyError, match="roll back instead"):
        target.promote()
    assert role(cluster, "canaryflow-a") == "stable"


def test_rollback_refuses_to_leave_nothing_serving(cluster: FakeCluster) -> None:
    target = make(cluster)
    target.deploy(variant("1"))
    cluster.objects[("deployments", "canaryflow-a")]["metadata"]["labels"]["canaryflow.io/role"] = (
        "canary"
    )
    with pytest.raises(NoStableError, match="only variant"):
        target.rollback()


def test_status_is_rebuilt_from_the_cluster_by_a_new_target(cluster: FakeCluster) -> None:
    make(cluster).deploy(variant("1"))
    make(cluster).deploy(variant("2"))
    make(cluster).set_weights(25)
    state = make(cluster).status()
    assert (state.stable and state.stable.release_id) == variant("1").release_id
    assert (state.canary and state.canary.image) == "reg.example/serving:v2"
    assert state.canary_percent == 25
    empty = make(FakeCluster()).status()
    assert empty.stable is None
    assert empty.canary is None
    assert empty.router_url is None


def _registry(tmp_path: Path, n: int) -> FakeRegistry:
    registry = FakeRegistry()
    for i in range(n):
        (tmp_path / f"m{i}").mkdir()
        (tmp_path / f"m{i}" / "config.json").write_text(f'{{"build": {i}}}')
        registry.register("tiny-chat", tmp_path / f"m{i}")
    return registry


def test_reconcile_rolls_back_an_undecided_canary(cluster: FakeCluster, tmp_path: Path) -> None:
    registry = _registry(tmp_path, 2)
    registry.set_alias("tiny-chat", CHAMPION, "1")
    target = make(cluster)
    target.deploy(variant("1"))
    target.deploy(variant("2"))
    target.set_weights(25)
    result = reconcile(make(cluster), registry, "tiny-chat")
    assert result.action == "rolled_back"
    assert result.after.settled
    assert cluster.live("deployments") == ["canaryflow-a"]


def test_a_promote_killed_half_way_is_finished_by_reconcile(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    registry = _registry(tmp_path, 2)
    registry.set_alias("tiny-chat", CHAMPION, "1")
    make(cluster).deploy(variant("1"))
    make(cluster).deploy(variant("2"))

    def crash(step: str) -> None:
        if step == "promote:stable-retiring":
            raise KeyboardInterrupt  # the worker pod is killed here

    doomed = KubernetesTarget(
        KubernetesTargetConfig(overlay="gpu"), api_client=cluster.api_client(), on_step=crash
    )
    with pytest.raises(KeyboardInterrupt):
        promote_release(doomed, registry, "tiny-chat")
    assert role(cluster, "canaryflow-a") == "retiring"
    half = make(cluster).status()
    assert half.stable is None
    assert half.canary_percent == 100
    result = reconcile(make(cluster), registry, "tiny-chat")
    assert result.action == "promoted"
    assert cluster.live("deployments") == ["canaryflow-b"]
    assert role(cluster, "canaryflow-b") == "stable"
    assert weights(cluster) == {"canaryflow-b": 100}


def test_an_undecided_half_promote_is_undone(cluster: FakeCluster) -> None:
    make(cluster).deploy(variant("1"))
    make(cluster).deploy(variant("2"))

    def crash(step: str) -> None:
        if step == "promote:stable-retiring":
            raise KeyboardInterrupt

    doomed = KubernetesTarget(
        KubernetesTargetConfig(overlay="gpu"), api_client=cluster.api_client(), on_step=crash
    )
    with pytest.raises(KeyboardInterrupt):
        doomed.promote()
    make(cluster).rollback()
    assert role(cluster, "canaryflow-a") == "stable"
    assert cluster.live("deployments") == ["canaryflow-a"]
    assert weights(cluster) == {"canaryflow-a": 100}


def test_api_key_file_is_read_from_the_secret(
    cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARYFLOW_STATE", str(tmp_path))
    path = make(cluster).api_key_file
    assert path.read_text() == "s3cret"
    assert path.stat().st_mode & 0o777 == 0o600


def test_make_target_knows_kubernetes_and_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARYFLOW_K8S_OVERLAY", "cpu")
    monkeypatch.setenv("CANARYFLOW_K8S_NAMESPACE", "llm")
    target = make_target("kubernetes", router_url="http://gw")
    assert isinstance(target, KubernetesTarget)
    assert target.values.namespace == "llm"
    assert target.values == load_overlay("cpu").model_copy(update={"namespace": "llm"})
