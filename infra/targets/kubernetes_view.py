"""The Kubernetes target's view of its slots: which Deployment plays which role, and the split.

    view = View(tuple(m for d in deployments if (m := member(d)) is not None))
    view.stable, view.canary, view.of("retiring"), view.free_slot()
    canary_percent(view, {"a": 90, "b": 10})    # -> 10

Rebuilt from the API server on every call (labels and annotations are the truth).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from infra.k8s.render import (
    IMAGE_ANNOTATION,
    MODEL_NAME_LABEL,
    MODEL_VERSION_LABEL,
    RELEASE_LABEL,
    ROLE_LABEL,
    SLOT_LABEL,
    SLOTS,
    Slot,
)
from infra.targets.base import DeployedVariant, Role, Variant
from infra.targets.kubernetes_rollout import deployment_healthy

Phase = Literal["stable", "canary", "retiring"]


@dataclass(frozen=True)
class Member:
    """One slot's Deployment as the API server reports it."""

    slot: Slot
    phase: Phase
    annotations: dict[str, str]
    healthy: bool

    def matches(self, variant: Variant) -> bool:
        a = self.annotations
        return (
            a.get(RELEASE_LABEL),
            a.get(MODEL_NAME_LABEL),
            a.get(MODEL_VERSION_LABEL),
            a.get(IMAGE_ANNOTATION),
        ) == (variant.release_id, variant.model_name, variant.model_version, variant.image)

    def deployed(self) -> DeployedVariant:
        role: Role = "stable" if self.phase == "stable" else "canary"
        a = self.annotations
        return DeployedVariant(
            role,
            a.get(MODEL_VERSION_LABEL, ""),
            a.get(IMAGE_ANNOTATION, ""),
            a.get(RELEASE_LABEL, ""),
            self.healthy,
            a.get(MODEL_NAME_LABEL, ""),
        )


@dataclass(frozen=True)
class View:
    """Every slot of the target at one moment."""

    members: tuple[Member, ...]

    def of(self, phase: Phase) -> list[Member]:
        return [m for m in self.members if m.phase == phase]

    @property
    def stable(self) -> Member | None:
        return next(iter(self.of("stable")), None)

    @property
    def canary(self) -> Member | None:
        return next(iter(self.of("canary")), None)

    def free_slot(self) -> Slot:
        taken = {m.slot for m in (self.stable, self.canary) if m is not None}
        return next(s for s in SLOTS if s not in taken)


def member(deployment: Any) -> Member | None:
    """The member a listed Deployment is; None if its labels are not one of ours, or it is
    being deleted (foreground deletion keeps it listed until its pods are gone)."""
    if deployment.metadata.deletion_timestamp is not None:
        return None
    labels = deployment.metadata.labels or {}
    slot, phase = labels.get(SLOT_LABEL), labels.get(ROLE_LABEL)
    if slot not in SLOTS or phase not in ("stable", "canary", "retiring"):
        return None
    return Member(
        cast(Slot, slot),
        cast(Phase, phase),
        dict(deployment.metadata.annotations or {}),
        deployment_healthy(deployment),
    )


def canary_percent(view: View, weights: Mapping[str, int]) -> int:
    """The share of traffic *not* going to the stable (100 when there is no stable)."""
    stable, canary = view.stable, view.canary
    if stable is None:
        return 0 if canary is None else 100
    on_stable = weights.get(stable.slot, 0)
    on_canary = weights.get(canary.slot, 0) if canary is not None else 0
    if on_stable + on_canary == 0:
        return 100
    return round(100 * on_canary / (on_stable + on_canary))
