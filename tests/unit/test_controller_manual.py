"""Manual gates in the canary loop (fake target, load and controls): pause holds, resume,
promote now, abort; and the approval's decision with a fake approver."""

from __future__ import annotations

from pathlib import Path

from infra.controller import CanaryController, CanaryResult
from infra.controller.approval import (
    Answer,
    FakeApprover,
    PrefectApprover,
    ask_approval,
    judge_approval,
)
from infra.controller.controls import Action, MemoryControls
from infra.controller.fake import FakeClock, FakeStepLoad, Profile, good_canary
from infra.controller.ports import StepEvidence
from infra.targets.base import Variant
from infra.targets.fake import FakeTarget
from validation.analysis import CanaryPolicy

RID = "m-20261201t170000z-abc123"
STEPS = [10, 25, 50]


def _target() -> FakeTarget:
    target = FakeTarget()
    for role, version in (("stable", "1"), ("canary", "2")):
        target.deploy(Variant(role=role, image=f"img:{version}", model_name="m",  # type: ignore[arg-type]
                              model_version=version, release_id=f"r{version}"))  # fmt: skip
    target.calls.clear()
    return target


def asking(controls: MemoryControls, at_batch: dict[int, tuple[Action, str]]) -> Profile:
    """A good canary whose n-th batch (from 1) is followed by a request (action, by)."""
    inner, batches = good_canary(), [0]

    def profile(weight: int, requests: int) -> StepEvidence:
        batches[0] += 1
        if batches[0] in at_batch:
            action, by = at_batch[batches[0]]
            controls.request(RID, action, by, note=f"after batch {batches[0]}")
        return inner(weight, requests)

    return profile


def _run(
    controls: MemoryControls,
    at_batch: dict[int, tuple[Action, str]],
    policy: CanaryPolicy | None = None,
    resume_after_sleeps: int | None = None,
) -> tuple[CanaryResult, FakeStepLoad, FakeClock, list[float]]:
    clock = FakeClock()
    load = FakeStepLoad(asking(controls, at_batch), clock=clock, seconds_per_run=5)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)
        if resume_after_sleeps is not None and len(sleeps) == resume_after_sleeps:
            controls.request(RID, "resume", "bo")

    controller = CanaryController(_target(), load, clock=clock, sleep=sleep,
                                  controls=controls.bind(RID))  # fmt: skip
    result = controller.run(STEPS, policy or CanaryPolicy(), Path("/nonexistent"))
    return result, load, clock, sleeps


def _controls() -> MemoryControls:
    controls = MemoryControls()
    controls.open(RID, "m", "2")
    return controls


def test_pause_holds_without_batches_and_stops_the_deadline_then_resume_continues() -> None:
    policy = CanaryPolicy(progress_deadline_s=60, pause_s=30)
    controls = _controls()
    result, load, _clock, sleeps = _run(controls, {1: ("pause", "ana")}, policy,
                                        resume_after_sleeps=20)  # fmt: skip
    # 20 pauses of 30 s (600 s, ten times the deadline) with not one batch sent meanwhile
    assert sleeps[:20] == [30.0] * 20
    assert result.passed, result.reasons
    first = result.steps[0]
    assert first.held_s == 600.0
    # the held time did not count: had it, the deadline would have ended the step at its
    # second batch; it ran on until the deadline measured without it
    assert first.batches > 2
    assert first.elapsed_s <= policy.progress_deadline_s + 5
    assert [(a.action, a.by, a.weight) for a in first.manual] == [
        ("pause", "ana", 10), ("resume", "bo", 10)]  # fmt: skip
    assert first.manual[0].evidence  # the step's estimates at the pause
    assert len(load.calls) > 1
    assert controls.get(RID).weight == 50


def test_promote_now_ends_the_loop_as_passed_with_who_and_the_evidence() -> None:
    result, load, _clock, _sleeps = _run(_controls(), {1: ("promote", "ana")})
    assert result.passed
    assert result.reasons[0].startswith("promoted by ana at step 10%")
    (step,) = result.steps
    assert (step.outcome, step.action) == ("manual", "promote")
    assert step.table
    assert step.manual[0].evidence == step.table
    assert len(load.calls) == 1  # no later step, no further batch


def test_abort_ends_the_loop_as_rolled_back_with_the_blast_radius() -> None:
    result, _load, _clock, _sleeps = _run(_controls(), {1: ("abort", "ana")})
    assert not result.passed
    assert not result.aborted
    assert result.reasons[0].startswith("aborted by ana at step 10%")
    assert result.steps[-1].action == "rollback"
    assert result.blast_radius is not None


def test_without_requests_the_loop_is_unchanged() -> None:
    result, _load, _clock, sleeps = _run(_controls(), {})
    assert result.passed
    assert not any(s.manual for s in result.steps)
    assert sleeps == []


def _passed() -> CanaryResult:
    return CanaryResult(passed=True, reasons=("all steps passed",))


def test_approval_approved_rejected_and_timed_out() -> None:
    controls = _controls()
    yes = ask_approval(FakeApprover(Answer(approve=True, by="ana", note="ok")), controls, RID,
                       600, "summary")  # fmt: skip
    assert controls.get(RID).approval is not None
    assert controls.get(RID).approval.outcome == "approved"  # type: ignore[union-attr]
    kept = judge_approval(_passed(), yes)
    assert kept.passed
    assert kept.reasons[-1] == "approved by ana: ok"
    no = ask_approval(FakeApprover(Answer(approve=False, by="bo")), None, RID, 600, "s")
    refused = judge_approval(_passed(), no)
    assert not refused.passed
    assert refused.reasons[0] == "rejected by bo at the approval"
    late = ask_approval(FakeApprover(None), controls, RID, 5, "s")
    timed_out = judge_approval(_passed(), late)
    assert not timed_out.passed
    assert timed_out.reasons[0] == "approval timed out after 5 s"
    assert controls.get(RID).approval.outcome == "timed_out"  # type: ignore[union-attr]


def test_prefect_approver_is_unavailable_outside_a_flow_run() -> None:
    why = PrefectApprover().unavailable()
    assert why is not None
    assert "flow run" in why
