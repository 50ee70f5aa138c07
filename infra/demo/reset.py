"""Start the demo over: remove what the previous `make demo` left, and nothing else.

The demo marks the machine (STATE/demo/owner) when it first takes the default Docker target
and the registered model `tiny-chat`. With the mark, a re-run removes both; without it,
finding either in use means someone else's work, so the demo stops and says how to go on.
"""

from __future__ import annotations

import os

from infra.demo.story import NAME, say
from infra.errors import CanaryflowError, ModelVersionNotFoundError
from infra.registry import registry_from_uri
from infra.settings import Settings

FORCE_ENV = "CANARYFLOW_DEMO_RESET"


class DemoStateError(CanaryflowError):
    """The default target or the model name is in use by something the demo did not make."""


def reset_previous_demo(settings: Settings) -> None:
    from infra.targets.docker import DockerTarget

    target = DockerTarget()
    serving = target.status().stable is not None
    registered = _registered(settings)
    mark = settings.state / "demo" / "owner"
    if (serving or registered) and not mark.exists() and os.environ.get(FORCE_ENV) != "1":
        raise DemoStateError(
            f"the default Docker target serves (stable: {serving}) or model {NAME!r} is "
            f"registered (versions: {registered}) and not by an earlier demo; the demo would "
            f"replace them. Run `make demo RESET=1` (or set {FORCE_ENV}=1) to let it."
        )
    if serving or registered:
        say(f"  resetting the previous demo: target 'default' and model {NAME!r}")
        target.destroy()
        if registered:
            from mlflow.tracking import MlflowClient

            MlflowClient(settings.mlflow_uri()).delete_registered_model(NAME)
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text("make demo\n")


def _registered(settings: Settings) -> int:
    registry = registry_from_uri(settings.mlflow_uri())
    count = 0
    for version in range(1, 1000):
        try:
            registry.get(NAME, str(version))
        except ModelVersionNotFoundError:
            break
        count += 1
    return count
