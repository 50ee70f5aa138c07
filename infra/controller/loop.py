"""The canary loop: move weight step by step, load, analyse, and say advance or roll back.

    controller = CanaryController(target, load, clock=time.monotonic)
    result = controller.run(steps=[10, 25, 50], policy=policy, out_dir=Path("runs/r1"))
    result.passed, result.reasons, result.steps   # each step's verdict table and action

Per weight: set_weights → a probe (policy.early: a load sized for tens of samples, judged
with a share of alpha; it can only roll back, so a broken canary stops within a minute) →
size the load (samples_needed; doubled after each extend, so an
inconclusive step gets more samples, not the same number again) → run it → a hard failure
(unhealthy, crash loop, 5xx burst) ends the loop at once → analyze_step → next_action:
advance, extend (same weight, more load), recheck (latency alone failed: one fresh window
before it counts), retry (failed under failure_threshold: a fresh window) or rollback
(failures reached the threshold, or still inconclusive past progress_deadline_s). The loop
never promotes or rolls back itself: decide.py does, so the decision is recorded before the
target is touched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from infra.controller.ports import Clock, Sleep, StepEvidence, StepLoad
from infra.controller.record import CanaryResult, StepRecord
from infra.errors import (
    DeployError,
    LoadError,
    MetricSourceError,
    NoRequestsCompletedError,
    RouterUnreachableError,
)
from infra.targets.base import DeployTarget
from validation.analysis import (
    ActionKind,
    CanaryPolicy,
    analyze_step,
    detect_hard_failure,
    next_action,
    samples_needed,
)

# An error in these stops the loop as `aborted` (the caller rolls back); others propagate.
_ABORTING = (DeployError, LoadError, MetricSourceError)
# The router was lost during a run (crashed, restarted): re-applying the step's weights
# brings it back from its recorded state, and the run is repeated once.
_ROUTER_LOST = (RouterUnreachableError, NoRequestsCompletedError)

log = logging.getLogger("canaryflow.controller")


class CanaryController:
    """Drives one canary through its steps against a target and a step load."""

    def __init__(
        self,
        target: DeployTarget,
        load: StepLoad,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        max_runs_per_step: int = 20,
    ) -> None:
        self.target = target
        self.load = load
        self.clock = clock
        self.sleep = sleep
        self.max_runs_per_step = max_runs_per_step

    def run(
        self, steps: list[int], policy: CanaryPolicy, out_dir: Path, *, interval_s: float = 0.0
    ) -> CanaryResult:
        """Every step in order; stops at the first that does not advance."""
        records: list[StepRecord] = []
        failures = 0
        for weight in steps:
            try:
                ok, failures = self.run_step(weight, policy, out_dir, failures, records)
            except _ABORTING as exc:
                reason = f"{type(exc).__name__} at {weight}%: {exc}"
                return CanaryResult(passed=False, aborted=True, reasons=(reason,),
                                    steps=tuple(records))  # fmt: skip
            if not ok:
                return CanaryResult(passed=False, reasons=(records[-1].reason,),
                                    steps=tuple(records))  # fmt: skip
            self._soak(records[-1].elapsed_s, interval_s)
        return CanaryResult(passed=True, reasons=("all steps passed",), steps=tuple(records))

    def run_step(
        self,
        weight: int,
        policy: CanaryPolicy,
        out_dir: Path,
        failures: int,
        records: list[StepRecord],
    ) -> tuple[bool, int]:
        """Load and analyse `weight` until advance (True) or rollback (False); appends records.

        Runs are numbered from 0 within the step: the probe (and its recheck), then the full
        analysis's runs.
        """
        self.target.set_weights(weight)
        step = _Step(weight, out_dir, self.clock(), records)
        if policy.early.enabled:
            stop, failures = self._probe(step, policy, failures)
            if stop:
                return False, failures
        main = policy.main()
        base = samples_needed(main, weight)
        extends, rechecked = 0, False
        for _ in range(self.max_runs_per_step):
            requests = base * 2**extends
            record, kind, failures = self._run(step, requests, main, failures, rechecked)
            records.append(record)
            if kind == ActionKind.ADVANCE:
                return True, failures
            if kind == ActionKind.ROLLBACK:
                return False, failures
            extends += kind == ActionKind.EXTEND
            rechecked = rechecked or kind == ActionKind.RECHECK
        records.append(_gave_up(records[-1], self.max_runs_per_step))
        return False, failures

    def _probe(self, step: _Step, policy: CanaryPolicy, failures: int) -> tuple[bool, int]:
        """The fail-only first look (and the recheck of a latency-only failure):
        (roll back now?, failures so far)."""
        probe = policy.probe()
        requests = samples_needed(probe, step.weight)
        record, kind, failures = self._run(step, requests, probe, failures, rechecked=False)
        if kind == ActionKind.RECHECK:
            step.records.append(record)
            record, kind, failures = self._run(step, requests, probe, failures, rechecked=True)
        if kind in (ActionKind.ROLLBACK, ActionKind.RETRY):
            step.records.append(record)  # a failure counts, under the threshold as a retry
            return kind == ActionKind.ROLLBACK, failures
        reason = f"probe: no blatant regression ({record.outcome}); full analysis next"
        step.records.append(record.model_copy(update={"action": "continue", "reason": reason}))
        return False, failures

    def _run(
        self, step: _Step, requests: int, policy: CanaryPolicy, failures: int, rechecked: bool
    ) -> tuple[StepRecord, ActionKind, int]:
        """One load run of the step and its judgement."""
        attempt = step.next_attempt()
        run_dir = step.out_dir / f"step-{step.weight}-{attempt}"
        evidence = self._load(step.weight, requests, run_dir)
        return self._judge(step, attempt, requests, evidence, policy, failures, rechecked)

    def _load(self, weight: int, requests: int, run_dir: Path) -> StepEvidence:
        """One load run; when the router was lost, restore it with the step's weights and
        run once more (a second loss aborts the loop)."""
        try:
            return self.load.run(weight, requests, run_dir)
        except _ROUTER_LOST as exc:
            log.warning("router lost during the %d%% run (%s); restoring it, running again",
                        weight, exc)  # fmt: skip
            self.target.set_weights(weight)
            return self.load.run(weight, requests, run_dir.with_name(f"{run_dir.name}-again"))

    def _judge(
        self,
        step: _Step,
        attempt: int,
        requests: int,
        evidence: StepEvidence,
        policy: CanaryPolicy,
        failures: int,
        rechecked: bool,
    ) -> tuple[StepRecord, ActionKind, int]:
        elapsed = self.clock() - step.started
        common = {"weight": step.weight, "attempt": attempt, "requests": requests,
                  "elapsed_s": elapsed, "reports": dict(evidence.reports)}  # fmt: skip
        hard = detect_hard_failure(evidence.health, policy.hard)
        if hard is not None:
            reason = "hard failure: " + "; ".join(hard.reasons)
            record = StepRecord(outcome="hard_failure", action="rollback", reason=reason,
                                table=[], **common)  # fmt: skip
            return record, ActionKind.ROLLBACK, failures
        verdict = analyze_step(evidence.source, policy, evidence.window_s,
                               canary_weight=step.weight, drift=evidence.drift)  # fmt: skip
        action = next_action(verdict, policy, failures_so_far=failures, step_elapsed_s=elapsed,
                             rechecked=rechecked)  # fmt: skip
        record = StepRecord(outcome=verdict.outcome.value, action=action.kind.value,
                            reason=action.reason, table=verdict.table(), **common)  # fmt: skip
        return record, action.kind, action.failures

    def _soak(self, elapsed_s: float, interval_s: float) -> None:
        if interval_s > elapsed_s:
            self.sleep(interval_s - elapsed_s)


@dataclass
class _Step:
    """One weight's runs: where their files go, when it began, its run counter."""

    weight: int
    out_dir: Path
    started: float
    records: list[StepRecord]
    attempts: int = 0

    def next_attempt(self) -> int:
        self.attempts += 1
        return self.attempts - 1


def _gave_up(last: StepRecord, runs: int) -> StepRecord:
    reason = f"no decision after {runs} load runs at {last.weight}% (last: {last.reason})"
    return last.model_copy(update={"action": "rollback", "reason": reason})
