"""The canary loop: move weight step by step, look after every batch, advance or roll back.

    controller = CanaryController(target, load, clock=time.monotonic)
    result = controller.run(steps=[10, 25, 50], policy=policy, out_dir=Path("runs/r1"))
    result.passed, result.reasons, result.steps   # one record per step: every check's
                                                  # estimate, CS, decision and when

Per weight: set_weights → repeated batches, each `load.run(weight, policy.batch_requests,
dir)` → a hard failure (unhealthy, crash loop, 5xx burst) ends the loop at once → the
batch is added to the step's sequential state (validation.analysis.StepAnalysis) → the
step ends as soon as any check has failed (rollback; under `failure_threshold`, the step's
evidence starts afresh) or every enabled check has passed (advance). A batch that carried
no traffic at all pauses the step (`pause_s`, recorded as "paused: no traffic"), never
passes it. Still undecided at `progress_deadline_s`: with no check failed and every
undecided one holding its min_samples, the step advances (`on_inconclusive: advance`, the
default) or rolls back (`rollback`); the record says what each check would still need.
The confidence sequences are valid at every look, and `alpha` is
split over checks and steps, so an identical canary is rolled back with probability at
most `alpha` over the whole rollout. The loop never promotes or rolls back itself:
decide.py does, so the decision is recorded before the target is touched.

Manual gates (controls.py): at every look the loop takes the release's new requests. pause
holds (no batches, weights kept, the step's clock and deadline stopped) until resume;
promote ends the loop as passed ("promoted by X at step N%"), abort as rolled back
("aborted by X at step N%"); each is recorded with who, when and the step's evidence then.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.controller.controls import ReleaseLooks, take_requests
from infra.controller.ports import Clock, Sleep, StepEvidence, StepLoad
from infra.controller.record import BlastRadius, CanaryResult, ManualAction, StepRecord
from infra.errors import (
    DeployError,
    LoadError,
    MetricSourceError,
    NoRequestsCompletedError,
    NoTrafficError,
    RouterUnreachableError,
)
from infra.targets.base import DeployTarget
from validation.analysis import (
    CanaryPolicy,
    Look,
    Outcome,
    StepAnalysis,
    StepVerdict,
    detect_hard_failure,
)

# An error in these stops the loop as `aborted` (the caller rolls back); others propagate.
_ABORTING = (DeployError, LoadError, MetricSourceError)
# The router was lost during a run (crashed, restarted): re-applying the step's weights
# brings it back from its recorded state, and the run is repeated once.
_ROUTER_LOST = (RouterUnreachableError, NoRequestsCompletedError)
PAUSED = "paused: no traffic"

log = logging.getLogger("canaryflow.controller")


@dataclass
class _Rollout:
    """What carries from step to step: the canary's exposure, the paired evidence."""

    exposure: _Exposure = field(default_factory=lambda: _Exposure())
    analysis: StepAnalysis | None = None


@dataclass
class _Exposure:
    """What the canary answered over the rollout (the blast radius if it is rolled back)."""

    started: float | None = None
    first_request: float | None = None
    canary_requests: int = 0
    user_requests: int | None = None
    user_failed: int | None = None
    user_wrong: int | None = None

    def add(self, evidence: StepEvidence) -> None:
        self.canary_requests += evidence.health.requests
        users = evidence.users
        if users is None:
            answered = evidence.traffic.get("user", {}).get("canary")
            if answered is not None:  # counts only: failed / wrong stay unknown
                self.user_requests = (self.user_requests or 0) + answered
            return
        self.user_requests = (self.user_requests or 0) + users.answered
        self.user_failed = (self.user_failed or 0) + users.failed
        if users.wrong is not None:
            self.user_wrong = (self.user_wrong or 0) + users.wrong
        if users.first_request_at is not None and self.first_request is None:
            self.first_request = users.first_request_at

    def radius(self, now: float) -> BlastRadius:
        first = self.first_request if self.first_request is not None else self.started
        return BlastRadius(user_requests=self.user_requests, user_failed=self.user_failed,
                           user_wrong=self.user_wrong, canary_requests=self.canary_requests,
                           exposed_s=now - (first if first is not None else now))  # fmt: skip


def _advanced(records: list[StepRecord]) -> str:
    """The reason of a rollout whose every step advanced: which passed, which only showed
    no harm by their deadline (on_inconclusive: advance)."""
    undecided = [f"{r.weight}%" for r in records if r.action == "advance" and r.outcome != "pass"]
    if not undecided:
        return "all steps passed"
    rest = ", the rest passed" if len(undecided) < len(records) else ""
    return (f"all steps advanced; {', '.join(undecided)} inconclusive at the deadline with "
            f"no check failed (on_inconclusive: advance){rest}")  # fmt: skip


def short_of_samples(verdict: StepVerdict, policy: CanaryPolicy) -> list[str]:
    """Undecided checks with fewer than their min_samples in a variant ("name n/min")."""
    short = []
    for check in verdict.checks:
        if check.outcome != Outcome.INCONCLUSIVE:
            continue
        spec = getattr(policy, check.name.split(".")[0], None)
        need = policy.min_samples if spec is None else policy.min_samples_for(spec)
        if min(check.n_canary, check.n_stable) < need:
            short.append(f"{check.name} {min(check.n_canary, check.n_stable)}/{need}")
    return short


def _batch_size(policy: CanaryPolicy, verdict: StepVerdict, weight: int) -> int:
    """policy.batch_requests; while drift is undecided, batches big enough for its verdict
    (Evidently's tests judge one batch's rows, so small batches never decide it), from the
    second batch on (the first stays small: a blatant regression fails in it)."""
    undecided = {c.name for c in verdict.checks if c.outcome == Outcome.INCONCLUSIVE}
    if verdict.requests == 0 or "drift" not in undecided:
        return policy.batch_requests
    need = policy.min_samples_for(policy.drift)
    return max(policy.batch_requests, math.ceil(need * 100 / weight))


@dataclass
class _Step:
    """One weight's batches: where their files go, when it began, what it has seen."""

    weight: int
    out_dir: Path
    started: float
    batches: int = 0
    paused: int = 0
    requests: int = 0
    reports: dict[str, Path] = field(default_factory=dict)
    manual: list[ManualAction] = field(default_factory=list)
    held_s: float = 0.0


class CanaryController:
    """Drives one canary through its steps against a target and a step load."""

    def __init__(
        self,
        target: DeployTarget,
        load: StepLoad,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        max_runs_per_step: int = 1000,
        progress: Callable[[str], None] | None = None,
        on_batch: Callable[[int, str], None] | None = None,
        controls: ReleaseLooks | None = None,
    ) -> None:
        """`progress`: every line for people; `on_batch`: (step weight, line) per batch."""
        self.progress, self.on_batch = progress, on_batch
        self.controls = controls
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
        rollout = _Rollout()
        for weight in steps:
            try:
                ok, failures = self.run_step(weight, policy, out_dir, failures, records,
                                             n_steps=len(steps), rollout=rollout)  # fmt: skip
            except _ABORTING as exc:
                reason = f"{type(exc).__name__} at {weight}%: {exc}"
                return CanaryResult(passed=False, aborted=True, reasons=(reason,),
                                    steps=tuple(records))  # fmt: skip
            if not ok or records[-1].action == "promote":
                return CanaryResult(passed=ok, reasons=(records[-1].reason,),
                                    steps=tuple(records))  # fmt: skip
            self._soak(records[-1].elapsed_s, interval_s)
        return CanaryResult(passed=True, reasons=(_advanced(records),), steps=tuple(records))

    def run_step(
        self,
        weight: int,
        policy: CanaryPolicy,
        out_dir: Path,
        failures: int,
        records: list[StepRecord],
        *,
        n_steps: int = 1,
        rollout: _Rollout | None = None,
    ) -> tuple[bool, int]:
        """Batches at `weight` until advance (True) or rollback (False); appends records.

        `failures`: failed checks so far in the release; returns the new count.
        `rollout`: what the previous steps leave (exposure, carried paired evidence).
        """
        rollout = rollout if rollout is not None else _Rollout()
        exposure = rollout.exposure
        self.target.set_weights(weight)
        step = _Step(weight, out_dir, self.clock())
        if exposure.started is None:
            exposure.started = step.started
        attempt = 0
        analysis = StepAnalysis(policy, n_steps, weight, carry=rollout.analysis)
        rollout.analysis = analysis
        verdict = analysis.verdict(Look(0, 0.0))
        while step.batches < self.max_runs_per_step:
            manual = self._manual(step, attempt, verdict, policy, exposure)
            if manual is not None:
                records.append(manual)
                return manual.action == "promote", failures
            evidence = self._batch(step, _batch_size(policy, verdict, weight))
            look = Look(step.requests, self.clock() - step.started)
            if evidence is None:  # the load is off and no user traffic came: wait
                step.paused += 1
                self.sleep(policy.pause_s)
                if self.clock() - step.started >= policy.progress_deadline_s:
                    records.append(self._deadline(step, attempt, verdict, policy,
                                                  self.clock() - step.started,
                                                  exposure.radius(self.clock())))  # fmt: skip
                    return False, failures
                continue
            exposure.add(evidence)
            hard = detect_hard_failure(evidence.health, policy.hard)
            if hard is not None:
                reason = "hard failure: " + "; ".join(hard.reasons)
                records.append(self._record(step, attempt, verdict, "hard_failure", "rollback",
                                            reason, exposure.radius(self.clock())))  # fmt: skip
                return False, failures
            added = analysis.update(evidence.source, evidence.window_s, evidence.drift, look)
            if not added:
                step.paused += 1
                self.sleep(policy.pause_s)
            verdict = analysis.verdict(look)
            self._say(step, verdict)
            if verdict.outcome == Outcome.PASS:
                records.append(self._record(step, attempt, verdict, "pass", "advance",
                                            "all checks passed: " + verdict.reason))  # fmt: skip
                return True, failures
            if verdict.outcome == Outcome.FAIL:
                failures += 1
                count = f"failed ({failures}/{policy.failure_threshold})"
                if failures >= policy.failure_threshold:
                    records.append(self._record(step, attempt, verdict, "fail", "rollback",
                                                f"{count}: {verdict.reason}",
                                                exposure.radius(self.clock())))  # fmt: skip
                    return False, failures
                why = f"{count}, retrying afresh: {verdict.reason}"
                records.append(self._record(step, attempt, verdict, "fail", "retry", why))
                attempt, analysis = attempt + 1, StepAnalysis(policy, n_steps, weight)
                rollout.analysis = analysis
                continue
            elapsed = self.clock() - step.started
            if elapsed >= policy.progress_deadline_s:
                record = self._deadline(step, attempt, verdict, policy, elapsed,
                                        exposure.radius(self.clock()))  # fmt: skip
                records.append(record)
                return record.action == "advance", failures
        reason = f"no decision after {step.batches} batches at {weight}%: {verdict.needs}"
        records.append(self._record(step, attempt, verdict, verdict.outcome.value, "rollback",
                                    reason, exposure.radius(self.clock())))  # fmt: skip
        return False, failures

    def _manual(
        self,
        step: _Step,
        attempt: int,
        verdict: StepVerdict,
        policy: CanaryPolicy,
        exposure: _Exposure,
    ) -> StepRecord | None:
        """The release's new requests (holding while paused); a promote or abort ends the
        step: its record. None: carry on."""
        if self.controls is None:
            return None
        taken = take_requests(self.controls, step.weight, step.requests, verdict.table(),
                              clock=self.clock, sleep=self.sleep, pause_s=policy.pause_s,
                              say=self.progress)  # fmt: skip
        step.manual += taken.actions
        step.held_s += taken.held_s
        step.started += taken.held_s  # the deadline clock does not run while paused
        done = taken.final
        if done is None:
            return None
        word = "promoted" if done.action == "promote" else "aborted"
        reason = f"{word} by {done.by} at step {step.weight}% ({step.requests} requests)"
        reason += f": {done.note}" if done.note else ""
        if done.action == "promote":
            return self._record(step, attempt, verdict, "manual", "promote", reason)
        return self._record(step, attempt, verdict, "manual", "rollback", reason,
                            exposure.radius(self.clock()))  # fmt: skip

    def _say(self, step: _Step, verdict: StepVerdict) -> None:
        """One line per batch for people watching: weight, evidence so far, each check."""
        if self.progress is None and self.on_batch is None:
            return
        checks = ", ".join(f"{c.name} {c.outcome.value}" + (f" {c.effect:.3g}"
                           if c.effect is not None else "") for c in verdict.checks)  # fmt: skip
        line = (f"canary {step.weight}%: batch {step.batches}, {step.requests} requests, "
                f"{self.clock() - step.started:.0f} s — {checks}")  # fmt: skip
        if self.progress is not None:
            self.progress(line)
        if self.on_batch is not None:
            self.on_batch(step.weight, line)

    def _batch(self, step: _Step, requests: int) -> StepEvidence | None:
        """One batch's evidence; None when the load reports no traffic at all."""
        run_dir = step.out_dir / f"step-{step.weight}-{step.batches}"
        step.batches += 1
        step.requests += requests
        try:
            evidence = self._load(step.weight, requests, run_dir)
        except NoTrafficError as exc:
            log.info("step %d%%: %s (%s)", step.weight, PAUSED, exc)
            return None
        step.reports.update(evidence.reports)
        return evidence

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

    def _deadline(
        self,
        step: _Step,
        attempt: int,
        verdict: StepVerdict,
        policy: CanaryPolicy,
        elapsed: float,
        radius: BlastRadius,
    ) -> StepRecord:
        deadline = f"after {elapsed:.0f} s (deadline {policy.progress_deadline_s:.0f} s)"
        if step.paused == step.batches:
            return self._record(step, attempt, verdict, "inconclusive", "rollback",
                                f"{PAUSED} {deadline}", radius)  # fmt: skip
        short = short_of_samples(verdict, policy)
        if policy.on_inconclusive == "advance" and not short:
            why = (f"no check failed and none could pass yet {deadline}: advancing "
                   f"(on_inconclusive: advance); to pass they would still need: "
                   f"{verdict.needs}")  # fmt: skip
            return self._record(step, attempt, verdict, "inconclusive", "advance", why)
        why = f"still inconclusive {deadline}; would still need: {verdict.needs}"
        if short:
            why += f"; too few samples to advance: {', '.join(short)}"
        return self._record(step, attempt, verdict, "inconclusive", "rollback", why, radius)

    def _record(
        self,
        step: _Step,
        attempt: int,
        verdict: StepVerdict,
        outcome: str,
        action: str,
        reason: str,
        radius: BlastRadius | None = None,
    ) -> StepRecord:
        table = [] if outcome == "hard_failure" else verdict.table()
        record = StepRecord(weight=step.weight, attempt=attempt, requests=step.requests,
                          outcome=outcome, action=action, reason=reason, table=table,
                          elapsed_s=self.clock() - step.started, reports=dict(step.reports),
                          batches=step.batches, paused_batches=step.paused,
                          paused=PAUSED if step.paused else None,
                          blast_radius=radius, manual=tuple(step.manual),
                          held_s=step.held_s)  # fmt: skip
        step.manual.clear()  # each action in exactly one record
        return record

    def _soak(self, elapsed_s: float, interval_s: float) -> None:
        if interval_s > elapsed_s:
            self.sleep(interval_s - elapsed_s)
