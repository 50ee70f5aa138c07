"""Start the demo over: remove what the previous `make demo` left, and nothing else.

The demo marks the machine (STATE/demo/owner) when it first takes its targets and models:
the default Docker target with `tiny-chat`, target `extract-json` with `extract-json`. With
the mark, a re-run removes them; without it, finding any in use means someone else's work,
so the demo stops and says how to go on.
"""

from __future__ import annotations

import os

from infra.demo.second_model import JSON_NAME, JSON_TARGET
from infra.demo.story import NAME, say
from infra.errors import CanaryflowError, ModelVersionNotFoundError
from infra.registry import registry_from_uri
from infra.settings import Settings

FORCE_ENV = "CANARYFLOW_DEMO_RESET"


class DemoStateError(CanaryflowError):
    """The default target or the model name is in use by something the demo did not make."""


def reset_previous_demo(settings: Settings) -> None:
    from infra.targets.docker import DockerTarget, make_docker_target

    owned = [(DockerTarget(), NAME), (make_docker_target(**JSON_TARGET), JSON_NAME)]
    found = [(t, name, t.status().stable is not None, _registered(settings, name))
             for t, name in owned]  # fmt: skip
    mark = settings.state / "demo" / "owner"
    in_use = [(t, n, s, r) for t, n, s, r in found if s or r]
    if in_use and not mark.exists() and os.environ.get(FORCE_ENV) != "1":
        seen = "; ".join(f"target {t.config.name!r} serves: {s}, model {n!r} versions: {r}"
                         for t, n, s, r in in_use)  # fmt: skip
        raise DemoStateError(
            f"{seen}, and not by an earlier demo; the demo would replace them. Run "
            f"`make demo RESET=1` (or set {FORCE_ENV}=1) to let it."
        )
    for target, name, _serving, registered in in_use:
        say(f"  resetting the previous demo: target {target.config.name!r} and model {name!r}")
        target.destroy()
        if registered:
            from mlflow.tracking import MlflowClient

            MlflowClient(settings.mlflow_uri()).delete_registered_model(name)
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text("make demo\n")


def _registered(settings: Settings, name: str) -> int:
    registry = registry_from_uri(settings.mlflow_uri())
    count = 0
    for version in range(1, 1000):
        try:
            registry.get(name, str(version))
        except ModelVersionNotFoundError:
            break
        count += 1
    return count
