"""The deploy-target seam: one small interface every place a model can serve implements.

The canary controller drives Docker, Kubernetes and the fake alike through these five methods.

    target = make_target("docker", settings)          # see infra/targets/__init__.py
    target.deploy(Variant(role="canary", image=..., model_version="3", ...))
    target.set_weights(10)                            # 10% of requests to the canary, live
    target.promote()                                  # canary becomes stable, old stable gone
    target.status()                                   # rebuilt from the target alone (reconcile)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["stable", "canary"]


@dataclass(frozen=True)
class Variant:
    """One deployable version of the serving image."""

    role: Role
    image: str
    model_name: str
    model_version: str
    release_id: str
    served_model_name: str = ""  # the name clients pass as `model`; "": model_name
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.served_model_name:
            object.__setattr__(self, "served_model_name", self.model_name)


@dataclass(frozen=True)
class Endpoint:
    """Where a deployed variant answers (direct, bypassing the router)."""

    role: Role
    url: str
    model_version: str


@dataclass(frozen=True)
class DeployedVariant:
    """A variant as the target reports it (labels are the truth, not our memory)."""

    role: Role
    model_version: str
    image: str
    release_id: str
    healthy: bool
    model_name: str = ""
    """The registered model it serves ("" when its labels predate the model-name label)."""


@dataclass(frozen=True)
class TargetState:
    """What runs now: the variants present and the canary's share of traffic."""

    stable: DeployedVariant | None
    canary: DeployedVariant | None
    canary_percent: int
    router_url: str | None

    @property
    def settled(self) -> bool:
        """True when no release is half-done: no canary, and all traffic on the stable."""
        return self.canary is None and self.canary_percent == 0


class DeployTarget(Protocol):
    """A place to run stable and canary side by side behind one weighted entry point."""

    def deploy(self, variant: Variant) -> Endpoint:
        """Start `variant`, wait until ready, warm it; a first deploy becomes the stable."""
        ...

    def set_weights(self, canary_percent: int) -> None:
        """Send `canary_percent`% of new requests to the canary, live, dropping none."""
        ...

    def promote(self) -> None:
        """100% canary → canary becomes stable → old stable removed. Idempotent."""
        ...

    def rollback(self) -> None:
        """100% stable → canary removed. Idempotent."""
        ...

    def status(self) -> TargetState:
        """What runs now, rebuilt from the target itself."""
        ...
