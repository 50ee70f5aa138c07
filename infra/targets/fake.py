"""In-memory DeployTarget for unit tests: simulates state, records every call, injects faults."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from infra.errors import DeployError
from infra.targets.base import DeployedVariant, Endpoint, Role, TargetState, Variant


@dataclass
class FakeTarget:
    """Behaves like a target with instant, always-healthy deploys unless told otherwise.

    `fail_on={"deploy"}` makes that method raise DeployError (after recording the call);
    `unhealthy_canary=True` deploys canaries that report unhealthy.
    """

    fail_on: set[str] = field(default_factory=set)
    unhealthy_canary: bool = False
    calls: list[tuple[str, object]] = field(default_factory=list)
    stable: DeployedVariant | None = None
    canary: DeployedVariant | None = None
    canary_percent: int = 0

    def _call(self, name: str, arg: object = None) -> None:
        self.calls.append((name, arg))
        if name in self.fail_on:
            raise DeployError(f"fake target: injected failure in {name}")

    def deploy(self, variant: Variant) -> Endpoint:
        self._call("deploy", variant)
        for running in (self.stable, self.canary):
            if (
                running is not None
                and running.model_version == variant.model_version
                and running.release_id == variant.release_id
            ):
                return Endpoint(running.role, f"fake://{running.role}", running.model_version)
        if self.canary is not None:
            raise DeployError(
                f"a canary (v{self.canary.model_version}, release {self.canary.release_id}) "
                "is already deployed: promote or roll it back first (reconcile)"
            )
        role: Role = "stable" if self.stable is None else "canary"
        deployed = DeployedVariant(
            role=role,
            model_version=variant.model_version,
            image=variant.image,
            release_id=variant.release_id,
            healthy=not (role == "canary" and self.unhealthy_canary),
            model_name=variant.model_name,
        )
        if role == "stable":
            self.stable = deployed
        else:
            self.canary, self.canary_percent = deployed, 0
        return Endpoint(role=role, url=f"fake://{role}", model_version=variant.model_version)

    def set_weights(self, canary_percent: int) -> None:
        self._call("set_weights", canary_percent)
        if not 0 <= canary_percent <= 100:
            raise ValueError(f"canary_percent must be 0..100, got {canary_percent}")
        if self.canary is None and canary_percent:
            raise DeployError("no canary is deployed; deploy one before moving weights")
        self.canary_percent = canary_percent

    def promote(self) -> None:
        self._call("promote")
        if self.canary is None:
            return  # already promoted (or nothing to promote): idempotent
        self.stable, self.canary, self.canary_percent = replace(self.canary, role="stable"), None, 0

    def rollback(self) -> None:
        self._call("rollback")
        if self.canary is not None and self.stable is None:
            raise DeployError("rollback would leave no server: the canary is the only variant")
        self.canary, self.canary_percent = None, 0

    def status(self) -> TargetState:
        self._call("status")
        return TargetState(self.stable, self.canary, self.canary_percent, "fake://router")
