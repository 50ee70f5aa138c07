"""The release flow: one candidate toward `champion` through a measured canary (DESIGN §2).

    release(ReleaseSpec(model="models:/tiny-chat@challenger"))   # real ports (wiring.py)
    release(git=GitSource(repo="/srv/git/app.git", sha="1a2b3c4", spec="release.yaml"))
    run_release(spec, ports)                                      # the same, with given ports

The git form is what the `canaryflow.git.push` trigger starts (prefect.yaml): the spec is the
file at that commit, and the commit is recorded with the verdict.

open controls (manual requests; a manual approval nobody could give is refused here) →
reconcile → resolve → validate (reject early) → package → build + smoke → first deploy
(stable + champion, no canary) or deploy canary → canary steps (pause / resume / promote /
abort by hand at any look) → approval (canary.approval: manual) → decide → report.
The flow only calls tasks (tasks/release_steps.py, tasks/report.py) and branches on them.

A failure anywhere on that path is a verdict too (infra/controller/failure.py): `error`
with the named error and what to do, the same record (Prefect artifacts, MLflow run), the
target settled when the failure came after deploy, the champion unchanged; the flow run
then fails with ReleaseFailedError, so automations can alert on it.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from infra.controller.candidate import Candidate
from infra.controller.failure import judge_failure
from infra.controller.ports import ReleasePorts
from infra.controller.record import (
    ManualAction,
    ReleaseOutcome,
    StepRecord,
    Stopwatch,
    Verdict,
    new_release_id,
)
from infra.controller.report import slug
from infra.controller.wiring import real_ports
from infra.errors import RegistryError, ReleaseFailedError
from infra.spec import GitSource, ReleaseSpec
from tasks import release_steps as steps
from tasks.notify import notify_verdict
from tasks.progress import ReleaseProgress
from tasks.report import log_release_run_task, publish_report


@flow(name="release", log_prints=True)
def release(
    spec: ReleaseSpec | None = None, ports: object = None, git: GitSource | None = None
) -> ReleaseOutcome:
    """Release `spec.model` (or the spec pushed to `git`): promoted, rolled_back, rejected
    (before deploy), aborted, or error (could not be judged: the run then fails, after its
    record is written, with ReleaseFailedError).

    `ports` (a ReleasePorts; tests pass fakes) is typed `object` because Prefect builds a
    parameter schema of every argument; None (deployments) means the real ports.
    """
    if ports is not None and not isinstance(ports, ReleasePorts):
        raise TypeError(f"ports must be a ReleasePorts or None, not {type(ports).__name__}")
    spec = steps.load_spec(spec, git)
    source = {} if git is None else {"repo": git.repo, "ref": git.ref, "sha": git.sha}
    outcome = run_release(spec, ports or real_ports(spec), source)
    if outcome.verdict == "error":
        raise ReleaseFailedError(
            f"release {outcome.release_id} could not be judged ({outcome.phase}): "
            + "; ".join(outcome.reasons)
            + f". Its record: the Prefect artifact release-{slug(outcome.model_name)}",
            outcome,
        )
    return outcome


def run_release(
    spec: ReleaseSpec, ports: ReleasePorts, source: dict[str, str] | None = None
) -> ReleaseOutcome:
    """The flow's body; every effect goes through a task and `ports`. Any failure becomes a
    verdict (failure.py) with the usual record; the target is left consistent."""
    name = spec.model_ref()[0]
    record = _Recorder(spec, ports, new_release_id(name), source or {})
    try:
        verdict, reasons, step_records = _judge(spec, ports, record)
    except Exception as exc:  # every failure on the release path is a verdict, not a crash
        verdict, reasons = judge_failure(exc, record.phase)
        record.failed_in = record.phase
        if record.phase in _PAST_DEPLOY:
            reasons += (steps.settle_target(ports, name),)
        step_records = ()
    return record.finish(verdict, reasons, step_records)


_Judged = tuple[Verdict, tuple[str, ...], tuple[StepRecord, ...]]
_PAST_DEPLOY = ("deploy", "canary", "approval", "decide")


def _judge(spec: ReleaseSpec, ports: ReleasePorts, record: _Recorder) -> _Judged:
    steps.open_controls(spec, ports, record.release_id)
    record.controlled = True
    record.enter("reconcile")
    steps.reconcile_target(ports, record.candidate.name)
    record.enter("resolve")
    candidate = record.candidate = steps.resolve_candidate(spec, ports)
    if candidate.version is not None and steps.plan_deploy(candidate, ports) == "serving":
        return "aborted", (_serving(candidate),), ()
    record.enter("validate")
    checked = steps.validate_candidate(candidate, ports)
    record.watch.lap("validate")
    record.metrics = dict(checked.metrics)
    record.tags = dict(checked.tags)
    if not checked.passed:
        steps.reject_candidate(candidate, ports, checked.reasons)
        return "rejected", checked.reasons, ()
    record.enter("package")
    candidate = record.candidate = steps.package_candidate(candidate, ports, record.release_id)
    record.enter("build")
    built = steps.build_and_smoke(candidate, ports)
    record.watch.lap("package_build")
    record.image = built.image
    if built.image is None:
        steps.reject_candidate(candidate, ports, built.reasons)
        return "rejected", built.reasons, ()
    return _deploy_and_judge(spec, ports, candidate, built.image, record)


def _deploy_and_judge(
    spec: ReleaseSpec, ports: ReleasePorts, candidate: Candidate, image: str, record: _Recorder
) -> _Judged:
    plan = steps.plan_deploy(candidate, ports)
    if plan == "serving":
        return "aborted", (_serving(candidate),), ()
    record.enter("deploy")
    if plan == "first":
        steps.deploy_first_release(candidate, image, spec, ports, record.release_id)
        record.watch.lap("deploy")
        return "promoted", ("first release: deployed as the stable",), ()
    failed = steps.deploy_canary(candidate, image, spec, ports, record.release_id)
    record.watch.lap("deploy")
    if failed:
        steps.abort_canary(candidate, ports, failed)
        return "aborted", failed, ()
    record.enter("canary")
    result = steps.run_canary(spec, candidate, ports, record.release_id, record.progress)
    record.watch.lap("canary")
    by_hand = bool(result.steps) and result.steps[-1].action == "promote"  # already a person's
    if result.passed and spec.canary.approval == "manual" and not by_hand:
        record.enter("approval")
        result, record.approval, told = steps.await_approval(
            spec, result, ports, record.release_id, candidate.version
        )
        record.notes.append(told)
        record.watch.lap("approval")
    record.enter("decide")
    verdict, reasons = steps.decide(result, candidate, ports)
    record.watch.lap("decide")
    return verdict, reasons, result.steps


def _serving(candidate: Candidate) -> str:
    return f"v{candidate.version} already serves as the stable; nothing to release"


class _Recorder:
    """Collects what the outcome reports, then publishes it (artifacts, MLflow run)."""

    def __init__(
        self, spec: ReleaseSpec, ports: ReleasePorts, release_id: str, source: dict[str, str]
    ) -> None:
        self.spec, self.ports, self.release_id, self.source = spec, ports, release_id, source
        self.watch = Stopwatch(ports.clock)
        self.metrics: dict[str, float] = {}
        self.tags: dict[str, str] = {}
        self.image: str | None = None
        name, version, _alias = spec.model_ref()
        self.candidate = Candidate(name=name, model_dir=Path(), version=version)
        self.phase = "start"
        self.failed_in: str | None = None
        self.approval: ManualAction | None = None
        self.controlled = False
        self.progress = ReleaseProgress(release_id, spec.canary.steps)  # the Prefect bar
        self.notes: list[str] = []  # for the record, before the verdict's own

    def enter(self, phase: str) -> None:
        """The next phase begins (printed: the flow's log shows where a release is)."""
        self.phase = phase
        print(f"release {self.release_id}: {phase}")
        self.progress.phase(phase)
        if self.controlled and self.ports.controls is not None:  # `canaryflow status`
            version = self.candidate.version  # known from resolve (a registered version) or
            update = {"phase": phase} | ({"version": version} if version else {})  # package
            self.ports.controls.update(self.release_id, **update)

    def finish(
        self, verdict: Verdict, reasons: tuple[str, ...], step_records: tuple[StepRecord, ...]
    ) -> ReleaseOutcome:
        """MLflow run, notification, then the Prefect record (naming what became of both)."""
        candidate = self.candidate
        self.progress.done(verdict)
        outcome = ReleaseOutcome(release_id=self.release_id, model_name=candidate.name,
                                 version=candidate.version, verdict=verdict, reasons=reasons,
                                 steps=step_records, timings=self.watch.laps,
                                 metrics=self.metrics, tags=self.tags, image=self.image,
                                 source=self.source, phase=self.failed_in,
                                 approval=self.approval)  # fmt: skip
        if self.controlled:
            steps.close_controls(self.ports, self.release_id, verdict)
        uri, run_id, unlogged, notes = self.ports.tracking_uri, None, None, list(self.notes)
        artifacts: tuple[str, ...] = ()
        if uri:
            try:
                logged = log_release_run_task(uri, outcome, self.spec.canary.policy)
                run_id, artifacts = logged.run_id, logged.artifacts
                notes.extend(logged.notes)
            except RegistryError as exc:
                unlogged = exc
                notes.append(f"the MLflow run was not logged: {exc}")
        links, delivery = notify_verdict(outcome, uri, run_id)
        notes.append(delivery)
        outcome = outcome.model_copy(update={"links": links, "notes": tuple(notes),
                                             "artifacts": artifacts})  # fmt: skip
        publish_report(outcome)
        print(outcome.summary())
        if unlogged is not None and verdict != "error":
            raise unlogged  # names the release, its verdict and where the record is
        return outcome
