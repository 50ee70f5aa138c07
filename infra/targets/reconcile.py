"""Bring a half-finished release to a consistent state, and end releases so that it can.

    result = reconcile(target, registry, "tiny-chat")   # first thing every release does
    ...canary steps...
    promote_release(target, registry, "tiny-chat")       # or rollback_release(..., reasons)

Where the promote decision is recorded: the registry alias `champion`. Deciding to promote
*is* pointing `champion` at the canary's model version, and `promote_release` does that
before it touches the target. So after a crash:

- a canary whose version `champion` names (and which is not simply the stable's version
  again) was decided: reconcile finishes `target.promote()`;
- any other canary, or traffic not all on the stable, was not decided: `target.rollback()`;
- then `champion` is made to name what the stable serves (a first deploy that crashed
  before its alias, or an alias moved by hand), because the registry must say what serves.

Why the alias and not a mark on the target: Docker labels cannot change after a container
is created, the alias is one atomic registry call that every target type shares, it is
visible in the MLflow UI, and DESIGN §6 already names target status + aliases as the truth.
The price: promote_release moves `champion` before the traffic moves (DESIGN §6 lists
weights first), so for the few seconds of the promote the alias leads what serves.
Both target calls are idempotent, so reconcile itself is safe to repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from infra.errors import DeployError, ModelVersionNotFoundError, TargetServesAnotherModelError
from infra.registry.base import CHAMPION, ModelRegistry
from infra.targets.base import DeployTarget, TargetState

log = logging.getLogger("canaryflow.targets.reconcile")

Action = Literal["none", "promoted", "rolled_back"]


@dataclass(frozen=True)
class ReconcileResult:
    """What reconcile found, what it did, and what runs now."""

    action: Action
    reason: str
    before: TargetState
    after: TargetState
    champion_before: str | None
    champion_after: str | None

    @property
    def changed(self) -> bool:
        return self.action != "none" or self.champion_before != self.champion_after


def champion_version(registry: ModelRegistry, model_name: str) -> str | None:
    """The version `champion` names, None when the alias (or the model) does not exist.

    Any other registry failure propagates: without the alias, a recorded decision cannot
    be told from none, and guessing could undo a promote or keep a bad canary.
    """
    try:
        return registry.get_by_alias(model_name, CHAMPION).version
    except ModelVersionNotFoundError:
        return None


def decide(state: TargetState, champion: str | None) -> tuple[Action, str]:
    """What a half-finished release needs, from the target state and `champion` alone."""
    canary = state.canary
    if canary is None:
        if state.settled:
            return "none", "no canary and all traffic on the stable"
        return "rolled_back", f"no canary but {state.canary_percent}% off the stable"
    stable_version = state.stable.model_version if state.stable else None
    if canary.model_version == champion and stable_version != champion:
        return "promoted", f"champion names the canary's version {champion}: promote was decided"
    return "rolled_back", (
        f"canary v{canary.model_version} (release {canary.release_id}) at "
        f"{state.canary_percent}% with no promote decision (champion: {champion or 'none'})"
    )


def ensure_serves_only(state: TargetState, model_name: str) -> None:
    """Refuse a target that serves another registered model, before anything is changed.

    Everything here reads one model's `champion` against what the target serves: on a
    target serving model A, a release of B would judge A's canary by B's alias (promoting
    or rolling back A's release), point B's `champion` at A's version number, and then
    canary B under A's clients, who ask for A's served name."""
    for deployed in (state.stable, state.canary):
        if deployed is not None and deployed.model_name not in ("", model_name):
            raise TargetServesAnotherModelError(
                f"this target serves {deployed.model_name} v{deployed.model_version} as its "
                f"{deployed.role} (release {deployed.release_id}); a release of {model_name} "
                f"here would replace it under its clients and move {model_name}'s champion "
                f"to that version. One target serves one model: release {model_name} on a "
                "target of its own (Docker: a worker whose CANARYFLOW_DOCKER_NAME and ports "
                "differ, see infra/targets/docker_config.py; Kubernetes: its own namespace "
                "or overlay). Nothing was changed."
            )


def reconcile(target: DeployTarget, registry: ModelRegistry, model_name: str) -> ReconcileResult:
    """Finish or undo whatever an earlier release left; then align `champion` with the stable.
    A target serving another model is refused first (`ensure_serves_only`)."""
    before = target.status()
    ensure_serves_only(before, model_name)
    champion = champion_version(registry, model_name)
    action, reason = decide(before, champion)
    if action == "promoted":
        target.promote()
    elif action == "rolled_back":
        target.rollback()
    after = target.status() if action != "none" else before
    if action != "none":
        log.warning("reconcile %s: %s", action, reason)
    if not after.settled:
        raise DeployError(
            f"target still unsettled after {action} (canary {after.canary}, "
            f"{after.canary_percent}%); check the target and run the release again"
        )
    champion_after = _align_champion(registry, model_name, after, champion)
    return ReconcileResult(action, reason, before, after, champion, champion_after)


def promote_release(target: DeployTarget, registry: ModelRegistry, model_name: str) -> TargetState:
    """Record the decision (`champion` → canary), then promote. Safe to repeat."""
    state = target.status()
    if state.canary is not None:
        registry.set_alias(model_name, CHAMPION, state.canary.model_version)
    elif state.stable is None:
        raise DeployError("nothing to promote: no canary and no stable is deployed")
    target.promote()
    return target.status()


def rollback_release(
    target: DeployTarget, registry: ModelRegistry, model_name: str, reasons: Sequence[str]
) -> TargetState:
    """Roll back, then tag the canary's version rejected with `reasons`. Safe to repeat."""
    state = target.status()
    target.rollback()
    canary, stable = state.canary, state.stable
    # Never reject what serves or is champion (a canary of the same version, say).
    keep = {champion_version(registry, model_name), stable.model_version if stable else None}
    if canary is not None and canary.model_version not in keep:
        registry.reject(model_name, canary.model_version, reasons)
    return target.status()


def _align_champion(
    registry: ModelRegistry, model_name: str, state: TargetState, champion: str | None
) -> str | None:
    if state.stable is None or state.stable.model_version == champion:
        return champion
    version = state.stable.model_version
    log.warning("champion named %s but the stable serves %s: moving champion", champion, version)
    registry.set_alias(model_name, CHAMPION, version)
    return version
