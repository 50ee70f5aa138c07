"""Reconcile and the two release endings, against FakeTarget and FakeRegistry."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import DeployError, RegistryUnreachableError, TargetServesAnotherModelError
from infra.registry import CHAMPION, FakeRegistry
from infra.targets.base import DeployedVariant, TargetState, Variant
from infra.targets.fake import FakeTarget
from infra.targets.reconcile import (
    decide,
    ensure_serves_only,
    promote_release,
    reconcile,
    rollback_release,
)

NAME = "tiny-chat"


def registered(registry: FakeRegistry, tmp_path: Path, n: int) -> list[str]:
    """Register `n` versions with distinct content; their version strings."""
    versions = []
    for i in range(n):
        model_dir = tmp_path / f"model-{i}"
        model_dir.mkdir()
        (model_dir / "config.json").write_text(f'{{"build": {i}}}')
        versions.append(registry.register(NAME, model_dir).version)
    return versions


def variant(version: str, release: str) -> Variant:
    return Variant(
        role="canary", image=f"img:{version}", model_name=NAME,
        model_version=version, release_id=release,
    )  # fmt: skip


def target_with(stable: str | None, canary: str | None = None, percent: int = 0) -> FakeTarget:
    """A fake in the given state (built through its own deploy/set_weights)."""
    target = FakeTarget()
    if stable is not None:
        target.deploy(variant(stable, f"rel-{stable}"))
    if canary is not None:
        target.deploy(variant(canary, f"rel-canary-{canary}"))
        target.set_weights(percent)
    target.calls.clear()
    return target


def called(target: FakeTarget) -> list[str]:
    return [name for name, _ in target.calls if name != "status"]


@pytest.fixture
def registry(tmp_path: Path) -> FakeRegistry:
    registry = FakeRegistry()
    registered(registry, tmp_path, 3)
    return registry


def test_settled_target_with_matching_champion_is_left_alone(registry: FakeRegistry) -> None:
    registry.set_alias(NAME, CHAMPION, "1")
    target = target_with(stable="1")

    result = reconcile(target, registry, NAME)

    assert (result.action, result.changed) == ("none", False)
    assert called(target) == []


def test_undecided_canary_is_rolled_back(registry: FakeRegistry) -> None:
    registry.set_alias(NAME, CHAMPION, "1")
    target = target_with(stable="1", canary="2", percent=50)

    result = reconcile(target, registry, NAME)

    assert result.action == "rolled_back"
    assert "no promote decision" in result.reason
    assert called(target) == ["rollback"]
    assert result.after.settled
    assert result.after.stable is not None
    assert result.after.stable.model_version == "1"
    assert registry.get_by_alias(NAME, CHAMPION).version == "1"


def test_recorded_decision_finishes_the_promote(registry: FakeRegistry) -> None:
    registry.set_alias(NAME, CHAMPION, "2")  # decided, then the process died
    target = target_with(stable="1", canary="2", percent=100)

    result = reconcile(target, registry, NAME)

    assert result.action == "promoted"
    assert called(target) == ["promote"]
    assert result.after.stable is not None
    assert result.after.stable.model_version == "2"
    assert result.champion_after == "2"


def test_canary_of_the_stables_version_is_never_taken_as_decided(registry: FakeRegistry) -> None:
    registry.set_alias(NAME, CHAMPION, "1")
    target = target_with(stable="1", canary="1", percent=10)  # e.g. a new serving image

    assert reconcile(target, registry, NAME).action == "rolled_back"


def test_weights_off_the_stable_without_canary_are_reset(registry: FakeRegistry) -> None:
    registry.set_alias(NAME, CHAMPION, "1")
    target = target_with(stable="1")
    target.canary_percent = 30  # e.g. a router restored from stale state

    result = reconcile(target, registry, NAME)

    assert result.action == "rolled_back"
    assert result.after.canary_percent == 0


def test_first_deploy_that_crashed_before_its_alias_gets_champion(registry: FakeRegistry) -> None:
    target = target_with(stable="1")

    result = reconcile(target, registry, NAME)

    assert (result.action, result.champion_before, result.champion_after) == ("none", None, "1")
    assert result.changed
    assert registry.get_by_alias(NAME, CHAMPION).version == "1"


def test_nothing_deployed_and_nothing_registered() -> None:
    result = reconcile(FakeTarget(), FakeRegistry(), NAME)

    assert (result.action, result.champion_after) == ("none", None)


def test_unreachable_registry_changes_nothing(registry: FakeRegistry) -> None:
    registry.fail["get_by_alias"] = RegistryUnreachableError("store down")
    target = target_with(stable="1", canary="2", percent=50)

    with pytest.raises(RegistryUnreachableError):
        reconcile(target, registry, NAME)
    assert called(target) == []
    assert target.canary_percent == 50


def test_reconcile_twice_is_a_no_op_the_second_time(registry: FakeRegistry) -> None:
    registry.set_alias(NAME, CHAMPION, "1")
    target = target_with(stable="1", canary="2", percent=50)

    reconcile(target, registry, NAME)
    again = reconcile(target, registry, NAME)

    assert (again.action, again.changed) == ("none", False)


def test_target_failure_propagates(registry: FakeRegistry) -> None:
    registry.set_alias(NAME, CHAMPION, "1")
    target = target_with(stable="1", canary="2", percent=50)
    target.fail_on.add("rollback")

    with pytest.raises(DeployError, match="injected failure in rollback"):
        reconcile(target, registry, NAME)


def test_promote_release_records_the_decision_before_touching_the_target(
    registry: FakeRegistry,
) -> None:
    registry.set_alias(NAME, CHAMPION, "1")
    target = target_with(stable="1", canary="2", percent=50)
    target.fail_on.add("promote")  # the process dies inside promote

    with pytest.raises(DeployError):
        promote_release(target, registry, NAME)
    assert registry.get_by_alias(NAME, CHAMPION).version == "2"

    target.fail_on.clear()  # the next release starts
    assert reconcile(target, registry, NAME).action == "promoted"
    assert target.stable is not None
    assert target.stable.model_version == "2"


def test_promote_release_is_idempotent(registry: FakeRegistry) -> None:
    target = target_with(stable="1", canary="2", percent=100)

    first = promote_release(target, registry, NAME)
    second = promote_release(target, registry, NAME)

    assert first == second
    assert first.stable is not None
    assert first.stable.model_version == "2"


def test_promote_release_with_nothing_deployed_fails() -> None:
    with pytest.raises(DeployError, match="nothing to promote"):
        promote_release(FakeTarget(), FakeRegistry(), NAME)


def test_rollback_release_rejects_the_canary_version(registry: FakeRegistry) -> None:
    registry.set_alias(NAME, CHAMPION, "1")
    target = target_with(stable="1", canary="2", percent=25)

    state = rollback_release(target, registry, NAME, ["p95 latency +40% vs stable"])

    assert state.settled
    assert registry.get(NAME, "2").rejected
    assert not registry.get(NAME, "1").rejected
    assert rollback_release(target, registry, NAME, ["again"]).settled  # idempotent


def test_rollback_release_never_rejects_what_serves(registry: FakeRegistry) -> None:
    registry.set_alias(NAME, CHAMPION, "1")
    target = target_with(stable="1", canary="1", percent=25)

    rollback_release(target, registry, NAME, ["new image was slower"])

    assert not registry.get(NAME, "1").rejected


def _state(stable: str | None, canary: str | None, percent: int) -> TargetState:
    def dv(version: str | None, role: str) -> DeployedVariant | None:
        if version is None:
            return None
        return DeployedVariant(role, version, "img", "rel", True)  # type: ignore[arg-type]

    return TargetState(dv(stable, "stable"), dv(canary, "canary"), percent, None)


@pytest.mark.parametrize(
    ("stable", "canary", "percent", "champion", "action"),
    [
        ("1", None, 0, "1", "none"),
        ("1", None, 0, None, "none"),
        ("1", None, 40, "1", "rolled_back"),
        ("1", "2", 0, "1", "rolled_back"),
        ("1", "2", 100, "1", "rolled_back"),
        ("1", "2", 0, "2", "promoted"),
        ("1", "2", 100, None, "rolled_back"),
        (None, "2", 100, "2", "promoted"),  # promote stopped after the stable was retired
        (None, "2", 100, "1", "rolled_back"),
        ("2", "2", 50, "2", "rolled_back"),
    ],
)
def test_decide(
    stable: str | None, canary: str | None, percent: int, champion: str | None, action: str
) -> None:
    assert decide(_state(stable, canary, percent), champion)[0] == action


def test_a_target_serving_another_model_is_refused_naming_it() -> None:
    serving = DeployedVariant("stable", "7", "img", "rel-a", True, model_name="support-bot")
    state = TargetState(serving, None, 0, None)
    ensure_serves_only(state, "support-bot")  # its own model: fine
    with pytest.raises(TargetServesAnotherModelError, match=r"serves support-bot v7 as its "
                       r"stable \(release rel-a\); a release of tiny-chat"):  # fmt: skip
        ensure_serves_only(state, "tiny-chat")
    canary = DeployedVariant("canary", "8", "img", "rel-b", True, model_name="support-bot")
    with pytest.raises(TargetServesAnotherModelError, match="v8 as its canary"):
        ensure_serves_only(TargetState(None, canary, 100, None), "tiny-chat")


def test_variants_labelled_before_the_model_name_label_are_not_refused() -> None:
    old = DeployedVariant("stable", "3", "img", "rel", True)  # model_name ""
    ensure_serves_only(TargetState(old, None, 0, None), "tiny-chat")


def test_reconcile_of_another_model_changes_neither_the_target_nor_its_alias(
    registry: FakeRegistry,
) -> None:
    target = FakeTarget()
    target.deploy(Variant("stable", "img", "support-bot", "1", "r1"))
    target.deploy(Variant("canary", "img", "support-bot", "2", "r2"))
    registry.set_alias(NAME, CHAMPION, "1")
    with pytest.raises(TargetServesAnotherModelError):
        reconcile(target, registry, NAME)
    state = target.status()
    assert state.canary is not None  # support-bot's release in flight is left to it
    assert [n for n, _ in target.calls if n not in ("status", "deploy")] == []
    assert registry.get_by_alias(NAME, CHAMPION).version == "1"
