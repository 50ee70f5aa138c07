"""The release flow: one candidate toward `champion` through a measured canary (DESIGN §2).

    release(ReleaseSpec(model="models:/tiny-chat@challenger"))   # real ports (wiring.py)
    release(git=GitSource(repo="/srv/git/app.git", sha="1a2b3c4", spec="release.yaml"))
    run_release(spec, ports)                                      # the same, with given ports

The git form is what the `canaryflow.git.push` trigger starts (prefect.yaml): the spec is the
file at that commit, and the commit is recorded with the verdict.

reconcile → resolve → validate (reject early) → package → build + smoke → first deploy
(stable + champion, no canary) or deploy canary → canary steps → decide → report.
The flow only calls tasks (tasks/release_steps.py, tasks/report.py) and branches on them.
"""

from __future__ import annotations

from prefect import flow

from infra.controller.candidate import Candidate
from infra.controller.ports import ReleasePorts
from infra.controller.record import ReleaseOutcome, StepRecord, Stopwatch, Verdict, new_release_id
from infra.controller.wiring import real_ports
from infra.spec import GitSource, ReleaseSpec
from tasks import release_steps as steps
from tasks.report import log_release_run_task, publish_report


@flow(name="release", log_prints=True)
def release(
    spec: ReleaseSpec | None = None, ports: object = None, git: GitSource | None = None
) -> ReleaseOutcome:
    """Release `spec.model` (or the spec pushed to `git`): promoted, rolled_back, rejected
    (before deploy) or aborted.

    `ports` (a ReleasePorts; tests pass fakes) is typed `object` because Prefect builds a
    parameter schema of every argument; None (deployments) means the real ports.
    """
    if ports is not None and not isinstance(ports, ReleasePorts):
        raise TypeError(f"ports must be a ReleasePorts or None, not {type(ports).__name__}")
    spec = steps.load_spec(spec, git)
    source = {} if git is None else {"repo": git.repo, "ref": git.ref, "sha": git.sha}
    return run_release(spec, ports or real_ports(spec), source)


def run_release(
    spec: ReleaseSpec, ports: ReleasePorts, source: dict[str, str] | None = None
) -> ReleaseOutcome:
    """The flow's body; every effect goes through a task and `ports`."""
    name = spec.model_ref()[0]
    record = _Recorder(spec, ports, new_release_id(name), source or {})
    steps.reconcile_target(ports, name)
    candidate = steps.resolve_candidate(spec, ports)
    if candidate.version is not None and steps.plan_deploy(candidate, ports) == "serving":
        return record.finish(candidate, "aborted", (_serving(candidate),))
    checked = steps.validate_candidate(candidate, ports)
    record.watch.lap("validate")
    record.metrics = dict(checked.metrics)
    if not checked.passed:
        steps.reject_candidate(candidate, ports, checked.reasons)
        return record.finish(candidate, "rejected", checked.reasons)
    candidate = steps.package_candidate(candidate, ports, record.release_id)
    built = steps.build_and_smoke(candidate, ports)
    record.watch.lap("package_build")
    record.image = built.image
    if built.image is None:
        steps.reject_candidate(candidate, ports, built.reasons)
        return record.finish(candidate, "rejected", built.reasons)
    return _deploy_and_judge(spec, ports, candidate, built.image, record)


def _deploy_and_judge(
    spec: ReleaseSpec, ports: ReleasePorts, candidate: Candidate, image: str, record: _Recorder
) -> ReleaseOutcome:
    plan = steps.plan_deploy(candidate, ports)
    if plan == "serving":
        return record.finish(candidate, "aborted", (_serving(candidate),))
    if plan == "first":
        steps.deploy_first_release(candidate, image, spec, ports, record.release_id)
        record.watch.lap("deploy")
        return record.finish(candidate, "promoted", ("first release: deployed as the stable",))
    failed = steps.deploy_canary(candidate, image, spec, ports, record.release_id)
    record.watch.lap("deploy")
    if failed:
        steps.abort_canary(candidate, ports, failed)
        return record.finish(candidate, "aborted", failed)
    result = steps.run_canary(spec, candidate, ports, record.release_id)
    record.watch.lap("canary")
    verdict, reasons = steps.decide(result, candidate, ports)
    record.watch.lap("decide")
    return record.finish(candidate, verdict, reasons, result.steps)


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
        self.image: str | None = None

    def finish(
        self,
        candidate: Candidate,
        verdict: Verdict,
        reasons: tuple[str, ...],
        step_records: tuple[StepRecord, ...] = (),
    ) -> ReleaseOutcome:
        outcome = ReleaseOutcome(release_id=self.release_id, model_name=candidate.name,
                                 version=candidate.version, verdict=verdict, reasons=reasons,
                                 steps=step_records, timings=self.watch.laps,
                                 metrics=self.metrics, image=self.image,
                                 source=self.source)  # fmt: skip
        publish_report(outcome)
        if self.ports.tracking_uri:
            log_release_run_task(self.ports.tracking_uri, outcome)
        print(outcome.summary())
        return outcome
