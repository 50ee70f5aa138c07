"""A failure on the release path becomes a verdict, never a bare traceback.

    verdict, reasons = judge_failure(exc, phase="package")     # ("error", (...,))
    worth_retrying(exc)                                        # the tasks' retry condition
    note = settle_after_failure(target, registry, "my-model")  # what the target holds now

Verdicts (record.Verdict): a version an earlier release rejected is `rejected` again (the
candidate's own record says why); every other failure is `error`: the release could not be
judged, the candidate is NOT tagged rejected (an unreachable store or a full disk says
nothing about the model), and the champion is unchanged. The reasons name the error class
(the tree in infra/errors.py), its message, and what to do; an exception that is not one of
canaryflow's named errors gets the phase's advice, since its message was written for
someone else.

`settle_after_failure` leaves the target consistent after a failure past deploy: the same
reconcile every release starts with (roll back a canary that `champion` does not name,
finish one it does); when the registry cannot be read either, the canary is rolled back
(the next release's reconcile realigns `champion` with what serves).
"""

from __future__ import annotations

import logging

from infra.controller.record import Verdict
from infra.errors import (
    CanaryflowError,
    ClusterUnavailableError,
    EngineUnavailableError,
    RegistryError,
    RegistryUnreachableError,
    RejectedVersionError,
    RouterUnreachableError,
)
from infra.registry.base import ModelRegistry
from infra.targets.base import DeployTarget
from infra.targets.reconcile import reconcile

log = logging.getLogger("canaryflow.release")

# What to do when a phase fails with an exception that is not a named canaryflow error.
_ADVICE = {
    "reconcile": "the deploy target did not answer as expected: check it (`make status`, the "
    "Docker engine or the cluster) and run the release again",
    "resolve": "the candidate's files could not be fetched: check the model URI and the MLflow "
    "store, then run the release again",
    "validate": "validation could not run to the end: check the evaluation set and the model "
    "files named above, then run the release again",
    "package": "the candidate could not be registered: check the MLflow store (disk, "
    "permissions), then run the release again",
    "build": "the serving image could not be built: check the Docker engine and disk space "
    "(`make status`), then run the release again",
    "deploy": "the candidate could not be deployed: check the target, then run the release again",
    "canary": "the canary analysis stopped: check the load and metric sources, then run the "
    "release again",
    "decide": "the decision could not be carried out: check the target and the registry; the "
    "next release finishes or undoes it (reconcile)",
}
_DEFAULT_ADVICE = "run the release again once the cause above is fixed"


# Named errors a retry can mend: something did not answer for a moment.
TRANSIENT = (RegistryUnreachableError, EngineUnavailableError, ClusterUnavailableError,
             RouterUnreachableError)  # fmt: skip


def worth_retrying(exc: object) -> bool:
    """Whether a task that raised `exc` should run again: an unreachable store, engine,
    cluster or router, or an error that is not one of canaryflow's (an OS or network error
    from below); never a named refusal (a rejected version, a bad spec, a busy target),
    which a retry only repeats after a delay."""
    if isinstance(exc, TRANSIENT):
        return True
    return isinstance(exc, Exception) and not isinstance(exc, CanaryflowError)


def judge_failure(exc: BaseException, phase: str) -> tuple[Verdict, tuple[str, ...]]:
    """(verdict, reasons) for `exc` raised during `phase`."""
    if isinstance(exc, RejectedVersionError):
        return "rejected", (str(exc),)
    what = f"{type(exc).__name__} during {phase}: {exc}".rstrip(": ")
    if isinstance(exc, CanaryflowError):
        return "error", (what,)  # a named error's message already says what to do
    return "error", (what, "what to do: " + _ADVICE.get(phase, _DEFAULT_ADVICE))


def settle_after_failure(target: DeployTarget, registry: ModelRegistry, model_name: str) -> str:
    """Bring the target to a consistent state after a failure; a sentence saying what it holds."""
    try:
        try:
            result = reconcile(target, registry, model_name)
            if result.action == "none":
                return "target: unchanged (no canary, all traffic on the stable)"
            return f"target: {result.action} ({result.reason})"
        except RegistryError as exc:
            log.warning("registry unreadable while settling (%s); rolling back", exc)
        state = target.status()
        if state.settled:
            return "target: unchanged (no canary, all traffic on the stable)"
        target.rollback()
        return "target: canary rolled back; the stable serves all traffic"
    except Exception as exc:
        return (
            f"target: could not be checked ({type(exc).__name__}: {exc}); the next release's "
            "reconcile finishes or undoes whatever is half done"
        )
