"""Docker target logic that needs no engine: names, state rebuilt from labels, router slots,
the reported split, the config, the factory. The e2e tier runs the same target for real."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from infra.errors import SpecError
from infra.router.haproxy_config import SlotState
from infra.router.prometheus import PrometheusLayout, ScrapeTarget, render_config
from infra.targets import make_target
from infra.targets.base import Variant
from infra.targets.docker import (
    DockerTarget,
    canary_percent,
    desired_slots,
    register,
    scrape_targets,
    split,
)
from infra.targets.docker_config import DockerTargetConfig, shared_cpus, split_cpus
from infra.targets.docker_containers import (
    IMAGE_LABEL,
    MODEL_NAME_LABEL,
    MODEL_VERSION_LABEL,
    RELEASE_LABEL,
    SLOT_LABEL,
    TARGET_LABEL,
    Naming,
    View,
    from_container,
)

NAMING = Naming("demo")


def container(phase: str, slot: str, version: str = "1", health: str | None = "healthy") -> Any:
    """What the Docker SDK lists: a name, labels and inspect attrs."""
    name = NAMING.name(phase, slot)  # type: ignore[arg-type]
    labels = {
        TARGET_LABEL: "demo", SLOT_LABEL: slot, RELEASE_LABEL: f"rel-{version}",
        MODEL_NAME_LABEL: "tiny-chat", MODEL_VERSION_LABEL: version, IMAGE_LABEL: f"img:{version}",
    }  # fmt: skip
    state: dict[str, Any] = {"Status": "running"}
    if health is not None:
        state["Health"] = {"Status": health}
    return SimpleNamespace(name=name, labels=labels, attrs={"State": state}, status="running")


def view(*containers: Any) -> View:
    members = [from_container(c, NAMING) for c in containers]
    return View(tuple(m for m in members if m is not None))


def test_names_carry_the_role_and_parse_back() -> None:
    assert NAMING.name("stable", "a") == "canaryflow-demo-stable"
    assert NAMING.name("retiring", "b") == "canaryflow-demo-retiring-b"
    assert NAMING.phase("/canaryflow-demo-canary") == "canary"
    assert NAMING.phase("canaryflow-demo-starting-a") == "starting"
    assert NAMING.phase("canaryflow-other-stable") is None
    assert NAMING.phase("canaryflow-demo-whatever") is None


def test_state_is_rebuilt_from_names_and_labels() -> None:
    v = view(container("stable", "a", "1"), container("canary", "b", "2", "starting"))

    assert v.stable is not None
    assert v.canary is not None
    stable, canary = v.stable.deployed(), v.canary.deployed()
    assert (stable.role, stable.model_version, stable.release_id, stable.healthy) == (
        "stable", "1", "rel-1", True,
    )  # fmt: skip
    assert (canary.role, canary.model_version, canary.healthy) == ("canary", "2", False)


def test_foreign_or_unlabelled_containers_are_ignored() -> None:
    stray = container("stable", "a")
    stray.labels.pop(SLOT_LABEL)
    other = container("canary", "b")
    other.name = "someone-elses-canary"
    assert view(stray, other).members == ()


def test_member_matches_exactly_its_variant() -> None:
    member = view(container("canary", "b", "2")).canary
    assert member is not None
    same = Variant("canary", "img:2", "tiny-chat", "2", "rel-2")
    assert member.matches(same)
    assert not member.matches(Variant("canary", "img:2", "tiny-chat", "2", "rel-9"))


def test_free_slot_is_the_one_no_container_holds() -> None:
    assert view().free_slot() == "a"
    assert view(container("stable", "a")).free_slot() == "b"
    with pytest.raises(Exception, match="both slots"):
        view(container("stable", "a"), container("retiring", "b")).free_slot()


def test_router_follows_names_and_keeps_live_weights() -> None:
    v = view(container("stable", "b", "1"), container("canary", "a", "2"))

    assert desired_slots(v, {"a": 30, "b": 70}) == {
        "a": SlotState(30, True, "canary"),
        "b": SlotState(70, True, "stable"),
    }


def test_without_canary_the_stable_gets_everything_and_leftovers_nothing() -> None:
    v = view(container("stable", "b"), container("retiring", "a"))

    assert desired_slots(v, {"a": 100, "b": 0}) == {
        "a": SlotState(0, False, "none"),
        "b": SlotState(100, True, "stable"),
    }


def test_split_puts_the_percentage_on_the_canary_slot() -> None:
    v = view(container("stable", "b"), container("canary", "a", "2"))
    assert split(v, 10) == {"a": SlotState(10, True, "canary"), "b": SlotState(90, True, "stable")}


@pytest.mark.parametrize(
    ("containers", "weights", "percent"),
    [
        ((), {}, 0),
        ((("stable", "a"),), {"a": 100, "b": 0}, 0),
        ((("stable", "a"),), {"a": 0, "b": 0}, 100),  # all traffic off the stable: unsettled
        ((("stable", "a"), ("canary", "b")), {"a": 90, "b": 10}, 10),
        ((("stable", "a"), ("canary", "b")), {"a": 0, "b": 100}, 100),
        ((("canary", "b"), ("retiring", "a")), {"a": 0, "b": 100}, 100),  # promote half-way
    ],
)
def test_canary_percent(
    containers: tuple[tuple[str, str], ...], weights: dict[str, int], percent: int
) -> None:
    assert canary_percent(view(*(container(p, s) for p, s in containers)), weights) == percent


def test_metrics_targets_carry_role_and_version() -> None:
    v = view(container("stable", "a", "1"), container("canary", "b", "2"))

    targets = scrape_targets(v, {"a": 9001, "b": 9002})

    assert targets == [
        ScrapeTarget("a", 9001, "stable", "1", "rel-1"),
        ScrapeTarget("b", 9002, "canary", "2", "rel-2"),
    ]


def test_prometheus_config_relabels_haproxy_servers_by_slot(tmp_path: Path) -> None:
    layout = PrometheusLayout(tmp_path, 9090, 8781, "demo")
    text = render_config(layout, [ScrapeTarget("b", 9002, "canary", "2", "rel-2")])

    assert '"regex": "b"' in text
    assert '"target_label": "variant"' in text
    assert '"replacement": "canary"' in text
    assert '"model_version": "2"' in text


def test_config_refuses_clashing_ports() -> None:
    with pytest.raises(ValidationError, match="must differ"):
        DockerTargetConfig(router_port=9000, slot_ports=(9000, 9001))


def test_config_refuses_names_docker_cannot_use() -> None:
    with pytest.raises(ValidationError):
        DockerTargetConfig(name="Not OK")


def test_factory_knows_docker_once_registered(tmp_path: Path) -> None:
    register()
    target = make_target("docker", state_dir=tmp_path, router_port=9780, prometheus=False)
    named = make_target("docker", config=DockerTargetConfig(name="unit", state_dir=tmp_path))

    assert isinstance(target, DockerTarget)
    assert target.router_url == "http://127.0.0.1:9780"
    assert isinstance(named, DockerTarget)
    assert named.config.name == "unit"
    with pytest.raises(SpecError, match="not both"):
        make_target("docker", config=DockerTargetConfig(), router_port=1)
    with pytest.raises(SpecError, match="unknown deploy target 'dokcer'"):
        make_target("dokcer")


def test_constructing_a_target_touches_nothing(tmp_path: Path) -> None:
    DockerTarget(DockerTargetConfig(state_dir=tmp_path / "state", docker_host="unix:///nope"))
    assert not (tmp_path / "state").exists()


def test_cpus_are_split_in_halves_one_per_slot() -> None:
    assert split_cpus({0, 1}) == ("0", "1")
    assert split_cpus({0, 1, 2, 3, 5}) == ("0,1", "2,3,5")
    assert split_cpus({3}) is None  # one CPU: nothing to split, vLLM's own binding


def test_by_default_both_slots_share_every_cpu_with_unbound_threads() -> None:
    assert shared_cpus({0, 1}) == ("0,1", "0,1")
    assert shared_cpus({3}) is None
    config = DockerTargetConfig(cpusets=shared_cpus({0, 1, 2, 3}))
    for slot in ("a", "b"):  # the same for both: neither variant has cores of its own
        assert config.cpuset(slot) == "0,1,2,3"
        assert config.threads_env(slot) == {
            "CANARYFLOW_SERVING_CPU_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "2",
        }  # fmt: skip
    two = DockerTargetConfig(cpusets=("0-1", "0,1"), omp_threads=None)
    assert two.threads_env("b")["OMP_NUM_THREADS"] == "1"
    assert (
        DockerTargetConfig(cpusets=("0-3", "0-3"), omp_threads=3).threads_env("a")[
            "OMP_NUM_THREADS"
        ]
        == "3"
    )


def test_disjoint_cpusets_bind_each_servers_threads_to_its_own_cpus() -> None:
    config = DockerTargetConfig(cpusets=("0", "1"))
    assert config.threads_env("a") == {"CANARYFLOW_SERVING_CPU_THREADS_BIND": "0"}
    assert config.threads_env("b") == {"CANARYFLOW_SERVING_CPU_THREADS_BIND": "1"}
    assert DockerTargetConfig(cpusets=None).threads_env("a") == {}  # vLLM's own 'auto'


@pytest.mark.parametrize("bad", ["", "0;1", "a", "0-", "1,,2"])
def test_a_cpuset_that_is_not_a_cpu_list_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="not a CPU list"):
        DockerTargetConfig(cpusets=(bad, "0"))


def test_config_reads_the_machine_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARYFLOW_DOCKER_NAME", "fromenv")
    monkeypatch.setenv("CANARYFLOW_DOCKER_ROUTER_PORT", "9780")
    monkeypatch.setenv("CANARYFLOW_DOCKER_CPUSETS", '["1", "0"]')
    config = DockerTargetConfig(router_port=9790)
    assert (config.name, config.router_port, config.cpusets) == ("fromenv", 9790, ("1", "0"))
    monkeypatch.setenv("CANARYFLOW_DOCKER_CPUSETS", "null")
    assert DockerTargetConfig().cpuset("a") is None
    monkeypatch.setenv("CANARYFLOW_DOCKER_ROUTER_PORT", "eighty")
    with pytest.raises(ValidationError, match="router_port"):
        DockerTargetConfig()
