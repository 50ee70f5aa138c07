"""A release's `target_settings`, checked against its target's config before anything runs.

    check_target_settings("docker", {"name": "extract-json", "router_port": 8790})  # or raises

The settings are fields of DockerTargetConfig (docker) or KubernetesTargetConfig
(kubernetes), over the worker's CANARYFLOW_DOCKER_* / CANARYFLOW_K8S_* environment; a
misspelt field or a bad value is a ValueError naming the field and what it expects, raised
at spec validation (before anything is registered, built or deployed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


def check_target_settings(target: str, settings: Mapping[str, Any]) -> None:
    """ValueError listing every bad field of `settings` for `target`."""
    if target == "docker":
        from infra.targets.docker_config import DockerTargetConfig as Config
    elif target == "kubernetes":
        from infra.targets.kubernetes_config import KubernetesTargetConfig as Config  # type: ignore[assignment]
    else:
        return
    try:
        Config(**dict(settings))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        fields = ", ".join(sorted(Config.model_fields))
        raise ValueError(
            f"target_settings for target {target}: {problems} (fields: {fields})"
        ) from None
