"""One target per model on one machine: the release names its target, targets remember their
settings, clashing ports are refused with both names, the supervisor looks after all."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from infra.errors import SpecError
from infra.monitor.drift_watch import DriftCheckSpec
from infra.spec import ReleaseSpec
from infra.targets.docker import make_docker_target
from infra.targets.docker_config import DockerTargetConfig
from infra.targets.docker_fleet import RECORD, check_ports, forget, record, recorded
from infra.targets.docker_supervisor import Supervisor, run_fleet

JSON_PORTS = {"router_port": 8790, "haproxy_metrics_port": 8791, "slot_ports": [8792, 8793],
              "prometheus_port": 8794}  # fmt: skip


def config(tmp_path: Path, name: str, **fields: Any) -> DockerTargetConfig:
    return DockerTargetConfig(name=name, state_dir=tmp_path / "targets" / name, **fields)


def test_a_release_names_its_own_target_and_a_bad_setting_is_refused_by_name() -> None:
    spec = ReleaseSpec(model="models:/extract-json/2",
                       target_settings={"name": "extract-json", **JSON_PORTS})  # fmt: skip
    target = make_docker_target(**spec.target_settings)
    assert target.config.name == "extract-json"
    assert (target.config.router_port, target.config.slot_ports) == (8790, (8792, 8793))
    assert ReleaseSpec(model="models:/m/1").target_settings == {}  # the worker's target
    with pytest.raises(ValidationError, match=r"target_settings for target docker: router_prot"):
        ReleaseSpec(model="models:/m/1", target_settings={"router_prot": 8790})
    with pytest.raises(ValidationError, match=r"router_port: Input should be less than or equal"):
        ReleaseSpec(model="models:/m/1", target_settings={"router_port": 99999})
    with pytest.raises(ValidationError, match="name: String should match pattern"):
        DriftCheckSpec.model_validate({"model_name": "m", "evaluation": {"dataset": "d"},
                                       "target_settings": {"name": "Bad Name"}})  # fmt: skip


def test_targets_record_their_settings_and_are_found_beside_each_other(tmp_path: Path) -> None:
    default = config(tmp_path, "default")
    json_model = config(tmp_path, "extract-json", **JSON_PORTS)
    record(default)
    path = record(json_model)
    assert path == tmp_path / "targets" / "extract-json" / RECORD
    (tmp_path / "targets" / "broken").mkdir()
    (tmp_path / "targets" / "broken" / RECORD).write_text("{not json")
    found = recorded(tmp_path / "targets")
    assert [c.name for c in found] == ["default", "extract-json"]  # the broken one skipped
    assert found[1].router_port == 8790
    assert "api_key" not in path.read_text().replace("api_key_file", "")  # paths, no secret


def test_a_target_on_another_targets_ports_is_refused_naming_both(tmp_path: Path) -> None:
    record(config(tmp_path, "default"))
    clash = config(tmp_path, "extract-json", router_port=8790)  # the rest: default's ports
    with pytest.raises(SpecError, match=r"target 'extract-json' would listen on ports target "
                       r"'default' already uses: 8781 \(haproxy_metrics_port here"):  # fmt: skip
        check_ports(clash)
    check_ports(config(tmp_path, "extract-json", **JSON_PORTS))  # ports of its own: fine
    check_ports(config(tmp_path, "default"))  # itself, redeployed: fine
    forget(config(tmp_path, "default"))  # destroyed: its ports are free again
    check_ports(clash)


class Stand:
    """What run_fleet needs of a DockerTarget: its config's name and state directory."""

    def __init__(self, name: str) -> None:
        self.config = SimpleNamespace(name=name, resolved_state_dir=lambda: Path("/x") / name)


def test_the_supervisor_looks_after_every_target_including_later_ones(tmp_path: Path) -> None:
    targets = [Stand("default")]
    ticks: dict[str, int] = {}
    looks = iter(range(1_000_000))

    def make(target: Any) -> Supervisor:
        name = target.config.name

        def heal() -> list[str]:
            ticks[name] = ticks.get(name, 0) + 1
            return []

        return Supervisor(heal, lambda: {"haproxy": True, "prometheus": True},
                          tmp_path / f"{name}.json", interval_s=0.05)  # fmt: skip

    def stop() -> bool:
        n = next(looks)
        if n == 5:
            targets.append(Stand("extract-json"))  # a release deployed a second model's target
        return n > 40

    sups = run_fleet(lambda: list(targets), stop, rediscover_s=0.2, make=make)  # type: ignore[arg-type]
    assert set(sups) == {"default", "extract-json"}
    assert ticks["default"] >= 2
    assert ticks["extract-json"] >= 1
    assert (tmp_path / "extract-json.json").is_file()
