"""The canary loop against FakeTarget + FakeStepLoad: batches, advance, fail, pause, deadline."""

from __future__ import annotations

from dataclasses import replace
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
    no_traffic,
    slow_canary,
    too_few_samples,
)
from infra.controller.ports import StepEvidence
from infra.errors import NoRequestsCompletedError, NoTrafficError, RouterUnreachableError
from infra.targets.base import Variant
from infra.targets.fake import FakeTarget
from validation.analysis import CanaryPolicy

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
    load = FakeStepLoad(profiles, clock=clock, seconds_per_run=5)
    controller = CanaryController(target, load, clock=clock, sleep=clock.advance)
    result = controller.run(STEPS, policy or CanaryPolicy(), tmp)
    return result, target, load


def test_good_canary_passes_every_step_in_batches(tmp_path: Path) -> None:
    result, target, load = _run(good_canary(), tmp_path)
    assert result.passed, result.reasons
    assert [c for c in target.calls if c[0] == "set_weights"] == [("set_weights", w) for w in STEPS]
    batch = CanaryPolicy().batch_requests
    # when drift alone is undecided, one batch big enough for Evidently (100 canary rows)
    assert {r for _, r in load.calls} <= {batch, 100 * 100 // 10}
    assert [s.weight for s in result.steps] == STEPS  # one record per step
    assert [s.action for s in result.steps] == ["advance"] * 3
    assert sum(s.batches for s in result.steps) == len(load.calls)
    checks = {row["check"] for row in result.steps[0].table}
    assert checks >= {"latency.p50", "latency.p95", "latency.p99", "ttft.p99", "itl.p50",
                      "error_rate", "quality", "drift"}  # fmt: skip
    for row in result.steps[0].table:
        assert row["outcome"] == "pass"
        assert row["decided_at_requests"] is not None
        assert row["decided_at_s"] is not None
    assert result.blast_radius is None


def test_later_steps_reuse_the_paired_evidence(tmp_path: Path) -> None:
    """latency and quality carry over (equal conditions); each step still needs its own
    min_samples, so a later step is shorter but never empty."""
    result, _, _ = _run(good_canary(), tmp_path)
    first, *later = result.steps
    assert all(1 <= s.batches < first.batches for s in later)


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
    result, target, load = _run(profile, tmp_path)
    assert not result.passed
    assert not result.aborted
    assert [s.weight for s in result.steps] == [10]
    assert result.steps[-1].action == "rollback"
    failed = [r["check"] for r in result.steps[-1].table if r["outcome"] == "fail"]
    family = {"latency": ("latency", "ttft", "itl")}.get(check, (check,))  # latency-like
    assert any(name.split(".")[0] in family for name in failed)
    assert any(name in result.reasons[0] for name in family)
    assert ("promote", None) not in target.calls
    assert ("rollback", None) not in target.calls
    assert len(load.calls) <= 5  # a broken canary stops within a few batches
    blast = result.blast_radius
    assert blast is not None
    assert blast.canary_requests > 0
    assert blast.exposed_s > 0


@pytest.mark.parametrize(
    "profile",
    [canary_profile(accuracy=0.1), slow_canary(factor=15.0), canary_profile(error_rate=0.3)],
    ids=["broken-quality", "15x-slower", "30%-errors"],
)
def test_a_blatant_regression_stops_after_the_first_batches(
    profile: Profile, tmp_path: Path
) -> None:
    """Blatant: for latency, beyond window_max_factor (10x), which no window's conditions
    make alone; a 2x slowdown needs 5+ paired windows (the test above: <= 5 batches)."""
    result, _, load = _run(profile, tmp_path)
    assert not result.passed
    assert len(load.calls) <= 2
    assert result.steps[-1].requests <= 2 * CanaryPolicy().batch_requests


def test_too_few_samples_stay_inconclusive_until_the_deadline(tmp_path: Path) -> None:
    policy = CanaryPolicy(progress_deadline_s=300)
    result, _, load = _run(too_few_samples(), tmp_path, policy)
    assert not result.passed
    (step,) = result.steps
    assert (step.outcome, step.action) == ("inconclusive", "rollback")
    assert "deadline" in result.reasons[0]
    assert "would still need" in result.reasons[0]
    assert len(load.calls) == 300 // 5  # one batch per 5 s of fake time, up to the deadline
    assert all(row["outcome"] != "pass" or row["check"] == "drift" for row in step.table)


def test_undecided_with_enough_samples_advances_at_the_deadline(tmp_path: Path) -> None:
    # 30 s = 6 batches of 400: at 10% the canary has ~240 requests, past min_samples but
    # far from the ~800 that "errors within 1 point" needs to pass with confidence
    result, _, _ = _run(good_canary(), tmp_path, CanaryPolicy(progress_deadline_s=30))
    assert result.passed, result.reasons
    first = result.steps[0]
    assert (first.outcome, first.action) == ("inconclusive", "advance")
    assert "on_inconclusive: advance" in first.reason
    assert "would still need" in first.reason
    assert any(row["outcome"] == "inconclusive" for row in first.table)
    assert result.reasons[0].startswith("all steps advanced; 10%")

    strict = CanaryPolicy(progress_deadline_s=30, on_inconclusive="rollback")
    result, _, _ = _run(good_canary(), tmp_path / "strict", strict)
    assert not result.passed
    assert (result.steps[0].outcome, result.steps[0].action) == ("inconclusive", "rollback")


def test_no_traffic_pauses_and_never_passes(tmp_path: Path) -> None:
    policy = CanaryPolicy(progress_deadline_s=120, pause_s=10)
    result, _, load = _run(no_traffic(), tmp_path, policy)
    assert not result.passed
    (step,) = result.steps
    assert step.paused == "paused: no traffic"
    assert step.paused_batches == step.batches == len(load.calls)
    assert "paused: no traffic" in result.reasons[0]
    assert all(row["outcome"] == "inconclusive" for row in step.table)


def test_a_pause_then_traffic_resumes_and_passes(tmp_path: Path) -> None:
    result, _, _ = _run([no_traffic(), no_traffic(), good_canary()], tmp_path)
    assert result.passed, result.reasons
    assert result.steps[0].paused_batches == 2
    assert result.steps[0].paused == "paused: no traffic"


class _NoTrafficThen:
    """A load that is switched off and sees no user traffic for `idle` batches."""

    def __init__(self, inner: FakeStepLoad, idle: int) -> None:
        self.inner, self.idle = inner, idle

    def run(self, weight: int, requests: int, out_dir: Path) -> StepEvidence:
        if self.idle > 0:
            self.idle -= 1
            raise NoTrafficError("load disabled and no user request reached the canary")
        return self.inner.run(weight, requests, out_dir)


def test_no_traffic_from_the_load_pauses_the_step_then_it_resumes(tmp_path: Path) -> None:
    clock = FakeClock()
    load = _NoTrafficThen(FakeStepLoad(good_canary(), clock=clock), idle=3)
    controller = CanaryController(_target_with_canary(), load, clock=clock, sleep=clock.advance)
    result = controller.run([50], CanaryPolicy(), tmp_path)
    assert result.passed, result.reasons
    assert result.steps[0].paused_batches == 3
    assert result.steps[0].paused == "paused: no traffic"
    stalled = _NoTrafficThen(FakeStepLoad(good_canary(), clock=clock), idle=10_000)
    policy = CanaryPolicy(progress_deadline_s=60, pause_s=10)
    ctl = CanaryController(_target_with_canary(), stalled, clock=clock, sleep=clock.advance)
    never = ctl.run([50], policy, tmp_path)
    assert not never.passed
    assert not never.aborted
    assert "paused: no traffic" in never.reasons[0]


def test_a_failure_under_the_threshold_retries_afresh(tmp_path: Path) -> None:
    policy = CanaryPolicy(failure_threshold=2)
    bad = [low_quality_canary()] * 3
    result, _, _ = _run([*bad, good_canary()], tmp_path, policy)
    assert result.passed, result.reasons
    assert [(s.attempt, s.action) for s in result.steps][:2] == [(0, "retry"), (1, "advance")]


def test_hard_failure_rolls_back_without_analysis(tmp_path: Path) -> None:
    result, _, load = _run(crashing_canary(), tmp_path)
    assert not result.passed
    assert result.steps[0].outcome == "hard_failure"
    assert result.steps[0].table == []
    assert "unhealthy" in result.reasons[0]
    assert len(load.calls) == 1


def test_the_blast_radius_reads_user_counts_from_the_traffic_field(tmp_path: Path) -> None:
    bad = erroring_canary(0.3)

    def profile(weight: int, requests: int) -> StepEvidence:
        return replace(bad(weight, requests), traffic={"user": {"canary": 7, "stable": 60}})

    result, _, load = _run(profile, tmp_path)
    blast = result.blast_radius
    assert blast is not None
    assert blast.user_requests == 7 * len(load.calls)
    assert blast.user_failed is None  # counts only: the evidence cannot tell


def test_the_blast_radius_counts_the_users_the_canary_answered(tmp_path: Path) -> None:
    result, _, load = _run(canary_profile(error_rate=0.3, users=0.5), tmp_path)
    blast = result.blast_radius
    assert blast is not None
    per_batch = CanaryPolicy().batch_requests * 10 // 100
    assert blast.canary_requests == per_batch * len(load.calls)
    assert blast.user_requests == round(per_batch * 0.5) * len(load.calls)
    assert blast.user_failed == round(round(per_batch * 0.5) * 0.3) * len(load.calls)
    assert blast.exposed_s == pytest.approx(5.0 * len(load.calls))


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


def test_each_batch_is_reported_with_its_step_weight(tmp_path: Path) -> None:
    """on_batch gets (weight, line) per batch: what the Prefect progress bar is placed by."""
    target, clock = _target_with_canary(), FakeClock()
    load = FakeStepLoad(good_canary(), clock=clock, seconds_per_run=5)
    lines: list[str] = []
    batches: list[tuple[int, str]] = []
    controller = CanaryController(target, load, clock=clock, sleep=clock.advance,
                                  progress=lines.append,
                                  on_batch=lambda w, line: batches.append((w, line)))  # fmt: skip
    assert controller.run(STEPS, CanaryPolicy(), tmp_path).passed
    assert [w for w, _ in batches] == sorted(w for w, _ in batches)
    assert {w for w, _ in batches} == set(STEPS)
    assert all(line.startswith(f"canary {w}%: batch ") for w, line in batches)
    assert [line for _, line in batches] == [x for x in lines if x.startswith("canary ")]
