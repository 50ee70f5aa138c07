"""Deploy targets, chosen by name. An unknown name is an error, never a silent fallback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infra.errors import SpecError
from infra.targets.base import DeployTarget


def _fake(**kwargs: Any) -> DeployTarget:
    from infra.targets.fake import FakeTarget

    return FakeTarget(**kwargs)


def _docker(**kwargs: Any) -> DeployTarget:
    from infra.targets.docker import make_docker_target

    return make_docker_target(**kwargs)


def _kubernetes(**kwargs: Any) -> DeployTarget:
    from infra.targets.kubernetes import make_kubernetes_target

    return make_kubernetes_target(**kwargs)


_FACTORIES: dict[str, Callable[..., DeployTarget]] = {
    "fake": _fake,
    "docker": _docker,
    "kubernetes": _kubernetes,
}


def register_target(name: str, factory: Callable[..., DeployTarget]) -> None:
    """Make `name` available to make_target (the Docker and Kubernetes modules call this)."""
    _FACTORIES[name] = factory


def make_target(name: str, /, **kwargs: Any) -> DeployTarget:
    """The target called `name`; raises SpecError listing the known names otherwise."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(_FACTORIES))
        raise SpecError(f"unknown deploy target {name!r}: use one of {known}") from None
    return factory(**kwargs)
