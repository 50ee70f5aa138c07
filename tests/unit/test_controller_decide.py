"""A whole release in plain Python: loop + decide + candidate against the fakes (no Prefect)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.controller import CanaryController, decide
from infra.controller.candidate import Candidate, champion_dir, register, resolve
from infra.controller.fake import FakeClock, FakeStepLoad, Profile, good_canary, slow_canary
from infra.errors import DeployError, ModelVersionNotFoundError, RegistryUnreachableError
from infra.registry import CHALLENGER, CHAMPION, FakeRegistry
from infra.spec import ReleaseSpec
from infra.targets.fake import FakeTarget
from validation.analysis import CanaryPolicy

NAME = "tiny-chat"


def model_dir(root: Path, tag: str) -> Path:
    d = root / f"model-{tag}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(f'{{"tag": "{tag}"}}')
    (d / "golden.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    return d


def serving_v1(tmp_path: Path) -> tuple[FakeTarget, FakeRegistry, str]:
    """A target with v1 stable and champion, and v2 registered as challenger."""
    target, registry = FakeTarget(), FakeRegistry()
    v1 = registry.register(NAME, model_dir(tmp_path, "v1"), alias=CHAMPION)
    decide.deploy_first(target, registry, decide.variant_for(NAME, v1.version, "img:1", "r1", NAME))
    v2 = registry.register(NAME, model_dir(tmp_path, "v2"), alias=CHALLENGER)
    target.calls.clear()
    return target, registry, v2.version


def release_v2(tmp_path: Path, profile: Profile) -> tuple[FakeTarget, FakeRegistry, str, str]:
    target, registry, v2 = serving_v1(tmp_path)
    decide.deploy_canary(target, decide.variant_for(NAME, v2, "img:2", "r2", NAME))
    clock = FakeClock()
    controller = CanaryController(target, FakeStepLoad(profile, clock=clock), clock=clock,
                                  sleep=clock.advance)  # fmt: skip
    result = controller.run([10, 25, 50], CanaryPolicy(), tmp_path / "out")
    if result.passed:
        decide.promote(target, registry, NAME)
        verdict = "promoted"
    else:
        decide.rollback(target, registry, NAME, result.reasons)
        verdict = "rolled_back"
    return target, registry, v2, verdict


def effects(target: FakeTarget) -> list[tuple[str, object]]:
    return [(n, a if n == "set_weights" else None) for n, a in target.calls if n != "status"]


def test_good_canary_is_promoted_and_champion_moves(tmp_path: Path) -> None:
    target, registry, v2, verdict = release_v2(tmp_path, good_canary())
    assert verdict == "promoted"
    assert effects(target) == [("deploy", None), ("set_weights", 10), ("set_weights", 25),
                               ("set_weights", 50), ("promote", None)]  # fmt: skip
    assert registry.get_by_alias(NAME, CHAMPION).version == v2
    state = target.status()
    assert state.stable is not None
    assert state.stable.model_version == v2
    assert state.settled


def test_the_promote_decision_is_recorded_before_the_target_promotes(tmp_path: Path) -> None:
    target, registry, v2 = serving_v1(tmp_path)
    decide.deploy_canary(target, decide.variant_for(NAME, v2, "img:2", "r2", NAME))
    target.fail_on = {"promote"}  # a crash in the middle of the promote
    with pytest.raises(DeployError):
        decide.promote(target, registry, NAME)
    assert registry.get_by_alias(NAME, CHAMPION).version == v2  # reconcile will finish it


def test_slow_canary_rolls_back_rejects_and_leaves_the_stable(tmp_path: Path) -> None:
    target, registry, v2, verdict = release_v2(tmp_path, slow_canary())
    assert verdict == "rolled_back"
    assert effects(target) == [("deploy", None), ("set_weights", 10), ("rollback", None)]
    mv = registry.get(NAME, v2)
    assert mv.rejected
    reasons = mv.tags["canaryflow.rejected_reasons"]
    assert any(f"{name}.p" in reasons for name in ("latency", "ttft", "itl")), reasons
    assert registry.get_by_alias(NAME, CHAMPION).version == "1"
    state = target.status()
    assert state.stable is not None
    assert state.stable.model_version == "1"
    assert state.settled


def test_first_release_deploys_stable_and_champion(tmp_path: Path) -> None:
    target, registry = FakeTarget(), FakeRegistry()
    mv = registry.register(NAME, model_dir(tmp_path, "v1"), alias=CHALLENGER)
    assert decide.is_first_release(target.status())
    decide.deploy_first(target, registry, decide.variant_for(NAME, mv.version, "img", "r", NAME))
    state = target.status()
    assert state.stable is not None
    assert state.canary is None
    assert registry.get_by_alias(NAME, CHAMPION).version == mv.version


def test_resolve_downloads_a_registered_alias(tmp_path: Path) -> None:
    registry = FakeRegistry()
    registry.register(NAME, model_dir(tmp_path, "v1"), alias=CHALLENGER)
    spec = ReleaseSpec(model=f"models:/{NAME}@challenger")
    cand = resolve(spec, registry, tmp_path / "work")
    assert cand.version == "1"
    assert (cand.model_dir / "config.json").is_file()
    assert resolve(spec, registry, tmp_path / "work") == cand  # a repeat download is a no-op
    with pytest.raises(ModelVersionNotFoundError):
        resolve(ReleaseSpec(model=f"models:/{NAME}/9"), registry, tmp_path / "work")


def test_a_local_directory_is_registered_as_challenger(tmp_path: Path) -> None:
    registry = FakeRegistry()
    cand = resolve(
        ReleaseSpec(model=str(model_dir(tmp_path, "v1")), registered_name=NAME), registry, tmp_path
    )
    assert cand.version is None
    packaged = register(registry, cand, {"canaryflow.release_id": "r"})
    assert packaged.version == "1"
    assert registry.get_by_alias(NAME, CHALLENGER).version == "1"


def test_champion_dir_is_none_without_a_champion_or_for_itself(tmp_path: Path) -> None:
    registry = FakeRegistry()
    mv = registry.register(NAME, model_dir(tmp_path, "v1"))
    cand = Candidate(NAME, tmp_path, mv.version)
    assert champion_dir(registry, cand, tmp_path / "w") is None
    registry.set_alias(NAME, CHAMPION, mv.version)
    assert champion_dir(registry, cand, tmp_path / "w") is None
    other = Candidate(NAME, tmp_path, "2")
    assert champion_dir(registry, other, tmp_path / "w") == tmp_path / "w" / "models" / mv.digest


def test_mlflow_metric_names_are_sanitised() -> None:
    """A real release failed to log `time.package+build`: MLflow refuses '+' in keys."""
    import re

    from infra.controller.report import metric_name

    assert metric_name("time.package+build") == "time.package_build"
    assert metric_name("step10.run1.p95 (ms)") == "step10.run1.p95 _ms_"
    assert re.fullmatch(r"[A-Za-z0-9_\-./ :]+", metric_name("a+b*c?d"))


def test_an_unrecordable_promote_rolls_back_and_keeps_champion(tmp_path: Path) -> None:
    target, registry, v2 = serving_v1(tmp_path)
    decide.deploy_canary(target, decide.variant_for(NAME, v2, "img:2", "r2", NAME))
    target.set_weights(50)
    registry.fail = {"set_alias": RegistryUnreachableError("MLflow store is down.")}
    reason = decide.promote(target, registry, NAME)
    assert reason is not None
    assert "promote not recorded" in reason
    assert "down" in reason
    assert registry.get_by_alias(NAME, CHAMPION).version == "1"
    state = target.status()
    assert state.canary is None
    assert state.settled
    assert state.stable is not None
    assert state.stable.model_version == "1"
