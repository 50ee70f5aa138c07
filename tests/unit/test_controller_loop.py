"""The canary loop against FakeTarget + FakeStepLoad: advance, fail, inconclusive, hard failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.controller import CanaryController, CanaryResult
from infra.controller.fake import (
    FakeClock,
    FakeStepLoad,
    Profile,
    canary_profile,
    crashing_canary,
    erroring_canary,
    good_canary,
    low_quality_canary,
    slow_canary,
    too_few_samples,
)
from infra.errors import NoRequestsCompletedError, RouterUnreachableError
from infra.targets.base import Variant
from infra.targets.fake import FakeTarget
from validation.analysis import CanaryPolicy, samples_needed
from validation.analysis.policy import EarlyLook

STEPS = [10, 25, 50]


def _target_with_canary() -> FakeTarget:
    target = FakeTarget()
    target.deploy(Variant(role="stable", image="img:1", model_name="m", model_version="1",
                          release_id="r1"))  # fmt: skip
    target.deploy(Variant(role="canary", image="img:2", model_name="m", model_version="2",
                          release_id="r2"))  # fmt: skip
    target.calls.clear()
    return target


def _run(
    profiles: list[Profile] | Profile, tmp: Path, policy: CanaryPolicy | None = None
) -> tuple[CanaryResult, FakeTarget, FakeStepLoad]:
    target, clock = _target_with_canary(), FakeClock()
    load = FakeStepLoad(profiles, clock=clock, seconds_per_run=60)
    controller = CanaryController(target, load, clock=clock, sleep=clock.advance)
    result = controller.run(STEPS, policy or CanaryPolicy(), tmp)
    return result, target, load


def test_good_canary_passes_every_step_with_sized_load(tmp_path: Path) -> None:
    result, target, load = _run(good_canary(), tmp_path)
    assert result.passed
    assert [c for c in target.calls if c[0] == "set_weights"] == [("set_weights", w) for w in STEPS]
    policy = CanaryPolicy()
    sized = [[(w, samples_needed(policy.probe(), w)), (w, samples_needed(policy.main(), w))]
             for w in STEPS]  # fmt: skip
    assert load.calls == [call for pair in sized for call in pair]
    assert [s.action for s in result.steps] == ["continue", "advance"] * 3
    assert [s.attempt for s in result.steps] == [0, 1] * 3
    assert {row["check"] for row in result.steps[1].table} >= {"latency", "error_rate", "quality"}


@pytest.mark.parametrize(
    ("profile", "check"),
    [
        (slow_canary(), "latency"),
        (erroring_canary(), "error_rate"),
        (low_quality_canary(), "quality"),
    ],
)
def test_bad_canary_fails_at_first_step_naming_the_check(
    profile: Profile, check: str, tmp_path: Path
) -> None:
    result, target, _ = _run(profile, tmp_path)
    assert not result.passed
    assert not result.aborted
    assert {s.weight for s in result.steps} == {10}
    assert result.steps[-1].action == "rollback"
    failed = [r["check"] for r in result.steps[-1].table if r["outcome"] == "fail"]
    assert check in failed
    assert check in result.reasons[0]
    assert ("promote", None) not in target.calls
    assert ("rollback", None) not in target.calls


NO_PROBE = EarlyLook(enabled=False)


def test_too_few_samples_extends_then_rolls_back_at_the_deadline(tmp_path: Path) -> None:
    policy = CanaryPolicy(progress_deadline_s=300, early=NO_PROBE)
    result, _, load = _run(too_few_samples(), tmp_path, policy)
    assert not result.passed
    assert [s.action for s in result.steps] == ["extend"] * 4 + ["rollback"]
    assert "inconclusive" in result.reasons[0]
    assert "deadline" in result.reasons[0]
    assert [r for _, r in load.calls] == [samples_needed(policy, 10) * 2**i for i in range(5)]


def test_a_failure_under_the_threshold_retries_a_fresh_window(tmp_path: Path) -> None:
    policy = CanaryPolicy(failure_threshold=2, early=NO_PROBE)
    result, _, _ = _run([low_quality_canary(), good_canary()], tmp_path, policy)
    assert result.passed
    assert [s.action for s in result.steps][:2] == ["retry", "advance"]


def test_hard_failure_rolls_back_without_analysis(tmp_path: Path) -> None:
    result, _, load = _run(crashing_canary(), tmp_path)
    assert not result.passed
    assert result.steps[0].outcome == "hard_failure"
    assert result.steps[0].table == []
    assert "unhealthy" in result.reasons[0]
    assert len(load.calls) == 1


@pytest.mark.parametrize(
    ("profile", "actions"),
    [
        (canary_profile(accuracy=0.1), ["rollback"]),
        (slow_canary(factor=5.0), ["recheck", "rollback"]),  # latency: one more probe window
        (canary_profile(error_rate=0.3), ["rollback"]),
    ],
    ids=["broken-quality", "5x-slower", "30%-errors"],
)
def test_the_probe_stops_a_blatant_regression_after_tens_of_requests(
    profile: Profile, actions: list[str], tmp_path: Path
) -> None:
    result, _, load = _run(profile, tmp_path)
    assert not result.passed
    assert [s.action for s in result.steps] == actions
    assert load.calls == [(10, samples_needed(CanaryPolicy().probe(), 10))] * len(actions)
    assert load.calls[0][1] < samples_needed(CanaryPolicy(), 10) / 4


def test_the_probe_and_the_full_analysis_share_alpha() -> None:
    policy = CanaryPolicy(alpha=0.05)
    assert policy.probe().alpha + policy.main().alpha == pytest.approx(0.05)
    assert not policy.probe().drift.enabled
    assert policy.probe().min_samples == 50
    off = CanaryPolicy(early=NO_PROBE)
    assert off.main() == off


def test_a_latency_only_failure_is_rechecked_on_a_fresh_window(tmp_path: Path) -> None:
    """A host hiccup on the canary's cores fails one window; the recheck passes → advance."""
    result, _, load = _run([good_canary(), slow_canary(), good_canary()], tmp_path)
    assert result.passed
    first = result.steps[:3]
    assert [(s.attempt, s.action) for s in first] == [(0, "continue"), (1, "recheck"),
                                                      (2, "advance")]  # fmt: skip
    assert "latency alone failed" in first[1].reason
    assert load.calls[1] == load.calls[2]  # the recheck is a window of the same size


def test_a_slower_canary_fails_its_recheck_too(tmp_path: Path) -> None:
    result, _, _ = _run([good_canary(), slow_canary()], tmp_path)
    assert not result.passed
    assert [(s.attempt, s.action) for s in result.steps] == [(0, "continue"), (1, "recheck"),
                                                            (2, "rollback")]  # fmt: skip
    assert "latency" in result.reasons[0]


def test_quality_failures_are_not_rechecked(tmp_path: Path) -> None:
    result, _, _ = _run([good_canary(), low_quality_canary()], tmp_path)
    assert [s.action for s in result.steps] == ["continue", "rollback"]


def test_recheck_can_be_switched_off(tmp_path: Path) -> None:
    policy = CanaryPolicy(recheck_latency=False)
    result, _, _ = _run([good_canary(), slow_canary()], tmp_path, policy)
    assert [s.action for s in result.steps] == ["continue", "rollback"]


class _RouterLostOnce:
    """A load whose first run finds the router gone (a crashed or restarting HAProxy)."""

    def __init__(self, inner: FakeStepLoad, error: Exception) -> None:
        self.inner, self.error, self.dirs = inner, error, []  # type: ignore[var-annotated]

    def run(self, weight: int, requests: int, out_dir: Path):  # type: ignore[no-untyped-def]
        self.dirs.append(out_dir.name)
        if len(self.dirs) == 1:
            raise self.error
        return self.inner.run(weight, requests, out_dir)


@pytest.mark.parametrize("error", [RouterUnreachableError("gone"), NoRequestsCompletedError("0")])
def test_a_lost_router_is_restored_with_the_step_weight_and_the_run_repeated(
    tmp_path: Path, error: Exception
) -> None:
    target = _target_with_canary()
    load = _RouterLostOnce(FakeStepLoad(good_canary()), error)
    result = CanaryController(target, load).run([50], CanaryPolicy(), tmp_path)
    assert result.passed, result.reasons
    assert [c for c in target.calls if c[0] == "set_weights"] == [("set_weights", 50)] * 2
    assert load.dirs[:2] == ["step-50-0", "step-50-0-again"]


def test_a_router_lost_twice_in_a_row_aborts(tmp_path: Path) -> None:
    class Gone:
        def run(self, weight: int, requests: int, out_dir: Path) -> None:
            raise RouterUnreachableError("gone for good")

    result = CanaryController(_target_with_canary(), Gone()).run([50], CanaryPolicy(), tmp_path)  # type: ignore[arg-type]
    assert not result.passed
    assert result.aborted
    assert "RouterUnreachableError" in result.reasons[0]
