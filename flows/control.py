"""The control-release flow: pause, resume, promote or abort a running release from the UI.

    control_release("tiny-chat-20261201t170000z-1a2b3c", "pause", by="ana")

The same request as `canaryflow pause RELEASE` (infra/control_cli.py), for people who work
in the Prefect UI: run the `control-release` deployment with the release id (the release's
log and `canaryflow status` show it). A refused request fails the run with the named error.
"""

from __future__ import annotations

from prefect import flow

from infra.controller.controls import Action
from tasks.control import request_action


@flow(name="control-release", log_prints=True)
def control_release(
    release_id: str = "", action: Action = "pause", by: str = "prefect-ui", note: str = ""
) -> str:
    """Ask the running release `release_id` to pause, resume, promote now or abort.

    The defaults only fill the UI's form (an empty id is refused as unknown; pause is the
    one action that changes nothing for good)."""
    said = request_action(release_id, action, by, note)
    print(said)
    return said
