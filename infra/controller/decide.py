"""Deploy, promote and roll back a candidate; each records its decision before acting.

Where the promote decision is recorded: the registry alias `champion` (see
infra/targets/reconcile.py). `promote` points `champion` at the canary's version first, then
calls `target.promote()` (100% canary → canary becomes stable → old stable removed); when
the registry cannot record the decision, the canary is rolled back instead. A crash
between the two is finished by reconcile at the next release. `rollback` needs no record
beforehand: reconcile rolls back any canary that `champion` does not name.
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.errors import DeployError, RegistryError
from infra.registry.base import CHAMPION, ModelRegistry
from infra.targets.base import DeployTarget, Endpoint, TargetState, Variant
from infra.targets.reconcile import promote_release, rollback_release


def variant_for(
    name: str, version: str, image: str, release_id: str, served_model_name: str
) -> Variant:
    """The canary Variant of `name` v`version` (a first deploy becomes the stable instead)."""
    return Variant(
        role="canary",
        image=image,
        model_name=name,
        model_version=version,
        release_id=release_id,
        served_model_name=served_model_name,
    )


def is_first_release(state: TargetState) -> bool:
    """Nothing serves yet: the candidate goes straight to stable, without a canary."""
    return state.stable is None and state.canary is None


def deploy_first(target: DeployTarget, registry: ModelRegistry, variant: Variant) -> Endpoint:
    """Deploy as the stable, then point `champion` at it (reconcile repairs a crash between)."""
    endpoint = target.deploy(variant)
    registry.set_alias(variant.model_name, CHAMPION, variant.model_version)
    return endpoint


def deploy_canary(target: DeployTarget, variant: Variant) -> Endpoint:
    """Deploy next to the running stable, at 0% until the first step."""
    endpoint = target.deploy(variant)
    if endpoint.role != "canary":
        raise DeployError(f"target deployed v{variant.model_version} as {endpoint.role}")
    return endpoint


def promote(target: DeployTarget, registry: ModelRegistry, model_name: str) -> str | None:
    """Record (`champion` → canary), then promote on the target; None when done.

    When the registry cannot record the decision, nothing unrecorded may serve: the canary
    is rolled back (the stable keeps serving, `champion` unchanged) and the reason returned.
    """
    try:
        promote_release(target, registry, model_name)
    except RegistryError as exc:
        target.rollback()
        return (
            f"promote not recorded: {exc} The canary was rolled back, so the stable keeps "
            "serving and `champion` still names it; run the release again once the registry "
            "answers."
        )
    return None


def rollback(
    target: DeployTarget, registry: ModelRegistry, model_name: str, reasons: Sequence[str]
) -> TargetState:
    """Stable back to 100%, canary removed, its version tagged rejected with `reasons`."""
    return rollback_release(target, registry, model_name, reasons)
