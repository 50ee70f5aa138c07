from __future__ import annotations

import pytest

from infra.errors import DeployError, SpecError
from infra.targets import make_target
from infra.targets.base import Variant
from infra.targets.fake import FakeTarget


def _v(version: str, release: str = "r") -> Variant:
    return Variant("canary", "img", "tiny-chat", version, release)


def test_first_deploy_is_stable_then_canary_promote_rollback() -> None:
    t = FakeTarget()
    assert t.deploy(_v("1", "r1")).role == "stable"
    assert t.deploy(_v("2", "r2")).role == "canary"
    t.set_weights(50)
    t.promote()
    state = t.status()
    assert state.stable is not None
    assert state.stable.model_version == "2"
    assert state.settled
    t.promote()  # idempotent
    t.rollback()  # nothing to roll back: idempotent
    assert t.status().settled


def test_second_canary_is_refused_and_redeploy_is_a_noop() -> None:
    t = FakeTarget()
    t.deploy(_v("1", "r1"))
    t.deploy(_v("2", "r2"))
    assert t.deploy(_v("2", "r2")).role == "canary"
    with pytest.raises(DeployError, match="already deployed"):
        t.deploy(_v("3", "r3"))


def test_bad_weights_and_injected_faults() -> None:
    t = FakeTarget(fail_on={"promote"})
    t.deploy(_v("1"))
    with pytest.raises(DeployError, match="no canary"):
        t.set_weights(10)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        t.set_weights(101)
    with pytest.raises(DeployError, match="injected"):
        t.promote()
    assert [c[0] for c in t.calls] == ["deploy", "set_weights", "set_weights", "promote"]


def test_unknown_target_name_is_an_error_not_a_fallback() -> None:
    with pytest.raises(SpecError, match=r"unknown deploy target .nomad.: use one of docker, fake"):
        make_target("nomad")


def test_a_variant_is_served_under_its_own_model_name_unless_told_otherwise() -> None:
    """No demo name by default: a team's model is served as itself."""
    assert Variant("canary", "img", "support-bot", "3", "r").served_model_name == "support-bot"
    named = Variant("canary", "img", "support-bot", "3", "r", served_model_name="bot")
    assert named.served_model_name == "bot"
