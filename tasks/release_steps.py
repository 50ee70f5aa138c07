"""Prefect tasks of the release flow: thin wrappers around infra/controller.

Every task takes the release's ports (target, registry, step load, checks, images) as an
argument, so the flow runs against fakes in tests; none caches (the ports are live objects).
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NONE

from infra.controller import decide as ops
from infra.controller.approval import ask_approval, judge_approval
from infra.controller.candidate import Candidate, champion_dir, register, resolve
from infra.controller.failure import settle_after_failure
from infra.controller.loop import CanaryController
from infra.controller.ports import CheckReport, ReleasePorts
from infra.controller.record import CanaryResult, ManualAction, Verdict
from infra.errors import (
    ApprovalUnavailableError,
    DeployError,
    RegistryError,
    SmokeTestError,
    SpecError,
)
from infra.spec import GitSource, ReleaseSpec
from infra.targets.base import Variant
from infra.targets.reconcile import reconcile
from tasks.notify import notify_approval
from tasks.progress import ReleaseProgress
from tasks.retry import RETRY


@dataclass(frozen=True)
class Built:
    """The serving image, or why it could not be built or did not pass the smoke test."""

    image: str | None
    reasons: tuple[str, ...] = ()


@task(name="load-spec", cache_policy=NONE)
def load_spec(spec: ReleaseSpec | None, git: GitSource | None) -> ReleaseSpec:
    """The given spec, or the spec file at the pushed commit (exactly one of the two)."""
    if (spec is None) == (git is None):
        raise SpecError(
            "give the release either `spec` (a ReleaseSpec) or `git` (repo, sha and spec path "
            "of a pushed ReleaseSpec file), not " + ("both" if spec else "neither")
        )
    if spec is not None:
        return spec
    from infra.githook.spec_at import load_spec_at

    assert git is not None
    return load_spec_at(git.repo, git.sha, git.spec)


@task(name="reconcile-target", cache_policy=NONE, **RETRY)
def reconcile_target(ports: ReleasePorts, model_name: str) -> str:
    """Finish or undo a half-done earlier release; refuse to start when it stays unsettled."""
    result = reconcile(ports.target, ports.registry, model_name)
    return f"{result.action}: {result.reason}"


@task(name="resolve-candidate", cache_policy=NONE, **RETRY)
def resolve_candidate(spec: ReleaseSpec, ports: ReleasePorts) -> Candidate:
    """models:/NAME/VERSION or @ALIAS → downloaded files; a directory → itself."""
    return resolve(spec, ports.registry, ports.work_dir)


@task(name="validate-candidate", cache_policy=NONE, timeout_seconds=3600)
def validate_candidate(candidate: Candidate, ports: ReleasePorts) -> CheckReport:
    """Artifact, memory fit, golden-set quality vs the threshold and the champion."""
    champion = champion_dir(ports.registry, candidate, ports.work_dir)
    return ports.check.check(candidate.model_dir, champion)


@task(name="reject-candidate", cache_policy=NONE, **RETRY)
def reject_candidate(candidate: Candidate, ports: ReleasePorts, reasons: tuple[str, ...]) -> None:
    """Tag a registered candidate rejected with `reasons` (a local dir was never registered)."""
    if candidate.version is not None:
        ports.registry.reject(candidate.name, candidate.version, list(reasons))


@task(name="package-candidate", cache_policy=NONE, **RETRY)
def package_candidate(candidate: Candidate, ports: ReleasePorts, release_id: str) -> Candidate:
    """Register a local candidate as `challenger` (idempotent on content)."""
    return register(ports.registry, candidate, {"canaryflow.release_id": release_id})


@task(name="build-and-smoke", cache_policy=NONE, timeout_seconds=3600)
def build_and_smoke(candidate: Candidate, ports: ReleasePorts) -> Built:
    """Content-addressed serving image, smoke-tested; a failed smoke test is a reason to
    reject the candidate. A failed build (ImageBuildError: engine, disk, wheelhouse) says
    nothing about the model: it propagates and the release ends `error`, untagged."""
    try:
        return Built(image=ports.images.build(candidate.model_dir))
    except SmokeTestError as exc:
        return Built(image=None, reasons=(f"{type(exc).__name__}: {exc}",))


@task(name="plan-deploy", cache_policy=NONE)
def plan_deploy(candidate: Candidate, ports: ReleasePorts) -> str:
    """How to deploy: "first" (nothing serves), "canary", or "serving" (already the stable)."""
    state = ports.target.status()
    if ops.is_first_release(state):
        return "first"
    if state.stable is not None and state.stable.model_version == candidate.version:
        return "serving"
    return "canary"


@task(name="deploy-first-release", cache_policy=NONE, timeout_seconds=1800)
def deploy_first_release(
    candidate: Candidate, image: str, spec: ReleaseSpec, ports: ReleasePorts, release_id: str
) -> None:
    """Deploy as the stable and point `champion` at it: no canary to compare against."""
    variant = _variant(candidate, image, spec, release_id)
    ops.deploy_first(ports.target, ports.registry, variant)


@task(name="deploy-canary", cache_policy=NONE, timeout_seconds=1800)
def deploy_canary(
    candidate: Candidate, image: str, spec: ReleaseSpec, ports: ReleasePorts, release_id: str
) -> tuple[str, ...]:
    """Start the canary next to the stable (0% traffic); the reasons if it could not."""
    variant = _variant(candidate, image, spec, release_id)
    try:
        ops.deploy_canary(ports.target, variant)
    except DeployError as exc:
        return (f"DeployError: {exc}",)
    return ()


@task(name="canary-analysis", cache_policy=NONE)
def run_canary(
    spec: ReleaseSpec,
    candidate: Candidate,
    ports: ReleasePorts,
    release_id: str,
    shown: ReleaseProgress | None = None,
) -> CanaryResult:
    """Every step: weights → batches, each judged sequentially → advance / retry / rollback.
    Each batch's line is printed and, with `shown`, moves the release's Prefect progress bar."""

    looks = None
    if ports.controls is not None:  # `canaryflow status` shows the phase
        ports.controls.update(release_id, phase="canary")
        looks = ports.controls.bind(release_id)
    controller = CanaryController(ports.target, ports.load(candidate.model_dir),
                                  clock=ports.clock, sleep=ports.sleep,
                                  progress=print, controls=looks,
                                  on_batch=None if shown is None else shown.canary)  # fmt: skip
    out_dir = ports.work_dir / release_id
    result = controller.run(spec.canary.steps, spec.canary.policy, out_dir,
                            interval_s=spec.canary.interval_s)  # fmt: skip
    if ports.controls is not None:  # later requests are refused, not left unapplied
        ports.controls.update(release_id, phase="decide")
    return result


@task(name="open-controls", cache_policy=NONE)
def open_controls(spec: ReleaseSpec, ports: ReleasePorts, release_id: str) -> None:
    """Take manual requests for this release from now on; refuse a manual approval nobody
    could give (ApprovalUnavailableError) before anything is deployed."""
    if spec.canary.approval == "manual":
        why = (
            "no approver is configured" if ports.approver is None else ports.approver.unavailable()
        )
        if why is not None:
            raise ApprovalUnavailableError(f"canary.approval is manual but {why}; nothing was "
                                           "deployed")  # fmt: skip
    if ports.controls is not None:
        from prefect.runtime import flow_run

        name, version, _alias = spec.model_ref()
        run_id = flow_run.get_id()
        ports.controls.open(release_id, name, version, str(run_id) if run_id else None)


@task(name="await-approval", cache_policy=NONE)
def await_approval(
    spec: ReleaseSpec,
    result: CanaryResult,
    ports: ReleasePorts,
    release_id: str,
    version: str | None = None,
) -> tuple[CanaryResult, ManualAction, str]:
    """Every step advanced: announce the wait (webhook), then wait for a person's approve /
    reject (timeout → rolled back); the third item says what became of the announcement."""
    if ports.approver is None:
        raise ApprovalUnavailableError("canary.approval is manual but no approver is configured")
    timeout = spec.canary.approval_timeout_s
    summary = (f"Release `{release_id}` ({spec.model}): {'; '.join(result.reasons)}. Approve "
               f"to promote, reject to roll back; no answer within {timeout:.0f} s rolls back. "
               f"CLI: `canaryflow approve {release_id} [--reject]`.")  # fmt: skip
    name, _version, _alias = spec.model_ref()
    told = notify_approval(release_id, name, version, summary, timeout)
    print(told)
    action = ask_approval(ports.approver, ports.controls, release_id, timeout, summary)
    return judge_approval(result, action), action, told


@task(name="close-controls", cache_policy=NONE)
def close_controls(ports: ReleasePorts, release_id: str, verdict: str) -> None:
    """The verdict is in: later manual requests are refused with it."""
    if ports.controls is not None:
        ports.controls.close(release_id, verdict)


@task(name="decide", cache_policy=NONE, **RETRY)
def decide(
    result: CanaryResult, candidate: Candidate, ports: ReleasePorts
) -> tuple[Verdict, tuple[str, ...]]:
    """Promote (champion moved first), or roll back and tag the version rejected."""
    if result.passed:
        unrecorded = ops.promote(ports.target, ports.registry, candidate.name)
        return ("promoted", result.reasons) if unrecorded is None else ("aborted", (unrecorded,))
    ops.rollback(ports.target, ports.registry, candidate.name, result.reasons)
    return ("aborted" if result.aborted else "rolled_back"), result.reasons


@task(name="settle-target", cache_policy=NONE)
def settle_target(ports: ReleasePorts, model_name: str) -> str:
    """After a failure past deploy: the target consistent again; a sentence saying how."""
    return settle_after_failure(ports.target, ports.registry, model_name)


@task(name="abort-canary", cache_policy=NONE, **RETRY)
def abort_canary(candidate: Candidate, ports: ReleasePorts, reasons: tuple[str, ...]) -> None:
    """Roll back a canary that could not be deployed (whatever part of it exists)."""
    ops.rollback(ports.target, ports.registry, candidate.name, reasons)


def _variant(candidate: Candidate, image: str, spec: ReleaseSpec, release_id: str) -> Variant:
    if candidate.version is None:
        raise RegistryError(f"{candidate.name} has no registry version yet; package it first")
    return ops.variant_for(candidate.name, candidate.version, image, release_id,
                           spec.serving.served_model_name)  # fmt: skip
