"""Send `canaryflow.git.push` events to a Prefect API and know that they arrived.

    send_events([push_event(repo, ref, sha)], api_url="http://127.0.0.1:4200/api", timeout_s=8)

Prefect's `emit_event` hands events to a background worker that may drop them when a short
process exits, so this opens Prefect's own events client on the given URL instead
(`PrefectEventsClient`, or `PrefectCloudEventsClient` for a Prefect Cloud URL, which reads
PREFECT_API_KEY) with `checkpoint_every=1`: after each event is written to the websocket the
client pings and waits for the pong, and websocket frames are ordered, so when `emit` returns
the server has read the event. Anything else (refused, wrong URL, auth, too slow) is an
EmitError naming the URL and the reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

from infra.githook.errors import EmitError

_QUIET_LOGGERS = ("prefect.events.clients", "prefect._internal.version_checking", "websockets")


def send_events(events: Sequence[dict[str, Any]], api_url: str, timeout_s: float) -> list[str]:
    """Send each event (fields of prefect.events.Event) and return their ids, or raise."""
    for name in _QUIET_LOGGERS:  # our own line says what failed; no Prefect warnings too
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return asyncio.run(asyncio.wait_for(_send(events, api_url), timeout=timeout_s))
    except EmitError:
        raise
    except TimeoutError:
        raise EmitError(
            f"the Prefect API at {api_url} did not take the event within {timeout_s:g} s; "
            "check that the server is up and the URL ends in /api"
        ) from None
    except Exception as e:  # any transport/auth failure becomes one named error
        raise EmitError(
            f"cannot send the event to the Prefect API at {api_url}: "
            f"{type(e).__name__}: {e or 'no detail'}; check that the server is up "
            "(`python -m infra.services status`) and the URL ends in /api"
        ) from e


async def _send(events: Sequence[dict[str, Any]], api_url: str) -> list[str]:
    from prefect.events import Event  # imported here: the pure parts stay import-light

    client = _client(api_url)
    ids: list[str] = []
    async with client:
        for fields in events:
            event = Event(**fields)
            await client.emit(event)  # returns after the pong that confirms it was read
            ids.append(str(event.id))
    return ids


def _client(api_url: str) -> Any:
    from prefect.events.clients import PrefectCloudEventsClient, PrefectEventsClient
    from prefect.settings import PREFECT_CLOUD_API_URL

    if api_url.startswith(str(PREFECT_CLOUD_API_URL.value())):
        key = os.environ.get("PREFECT_API_KEY")
        if not key:
            raise EmitError(f"{api_url} is Prefect Cloud: export PREFECT_API_KEY for the hook")
        return PrefectCloudEventsClient(
            api_url=api_url, api_key=key, reconnection_attempts=1, checkpoint_every=1
        )
    return PrefectEventsClient(api_url=api_url, reconnection_attempts=1, checkpoint_every=1)
