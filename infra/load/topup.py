"""Traffic top-up: the router load sends only what user traffic has not already supplied.

    users = user_counts(capture_dir, since)          # {"stable": 610, "canary": 71}
    plan = plan_top_up(requests=700, weight=10, users=users, load_enabled=True)
    plan.load_requests                               # 0: users gave each variant its share

The next decision needs `requests` routed requests at `weight` % (the analysis sized them,
`validation.analysis.samples_needed`): about `requests * w` for the canary and
`requests * (1 - w)` for the stable. User requests already captured in the window count
toward both; the load sends the smallest number that, split by the router at `weight` %,
covers what is still missing for either variant. No load is sent when users suffice.

With the load disabled and no user request reaching the canary there is nothing to judge:
NoTrafficError (the step waits and says so; never a pass).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.errors import NoTrafficError


@dataclass(frozen=True)
class TopUp:
    """What one run sends through the router, and why."""

    needed: int
    """Routed requests the next decision needs (the loop's `requests`)."""
    weight: int
    users: Mapping[str, int] = field(default_factory=dict)
    """User requests per variant already captured in the window."""
    load_requests: int = 0
    """What the load sends now (0: none)."""

    @property
    def reason(self) -> str:
        users = ", ".join(f"{k} {v}" for k, v in sorted(self.users.items())) or "none"
        return (f"{self.needed} routed requests needed at {self.weight}%; user requests "
                f"captured: {users}; load sends {self.load_requests}")  # fmt: skip


def load_needed(requests: int, weight: int, users: Mapping[str, int]) -> int:
    """The fewest router requests that, split at `weight` %, fill each variant's share."""
    if requests < 0 or not 0 <= weight <= 100:
        raise ValueError(f"need requests >= 0 and 0 <= weight <= 100, got {requests}, {weight}")
    load = 0.0
    for variant, share in (("canary", weight / 100), ("stable", 1 - weight / 100)):
        if share <= 0:
            continue
        missing = requests * share - users.get(variant, 0)
        load = max(load, missing / share)
    return max(0, math.ceil(load - 1e-9))


def plan_top_up(
    requests: int, weight: int, users: Mapping[str, int], *, load_enabled: bool
) -> TopUp:
    """The run's top-up; NoTrafficError when the load is disabled and the canary got none."""
    need = load_needed(requests, weight, users)
    if not load_enabled:
        if weight > 0 and users.get("canary", 0) == 0:
            seen = ", ".join(f"{k} {v}" for k, v in sorted(users.items())) or "none"
            raise NoTrafficError(
                f"no user request reached the canary at {weight}% in this window (user "
                f"requests: {seen}) and the load is disabled: nothing to judge, so the step "
                "waits; send traffic through the router or enable the load"
            )
        need = 0
    return TopUp(needed=requests, weight=weight, users=dict(users), load_requests=need)
