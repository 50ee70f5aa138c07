"""Prefect task of the control-release flow: one manual request, written for the release."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from infra.control_cli import controls
from infra.controller.controls import Action


@task(name="request-action", cache_policy=NONE)
def request_action(release_id: str, action: Action, by: str, note: str) -> str:
    """Write the request down (refused with a named ControlError: nothing changes)."""
    asked = controls().request(release_id, action, by, note)
    return f"{action} of {release_id} by {asked.by} at {asked.at}: applied at its next look"
