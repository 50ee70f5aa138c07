"""Named errors of the Docker target (defined in infra/errors.py)."""

from __future__ import annotations

from infra.errors import (
    CanaryUnhealthyError,
    ContainerStartError,
    EngineUnavailableError,
    NoStableError,
    RouterError,
    TargetBusyError,
)

__all__ = [
    "CanaryUnhealthyError",
    "ContainerStartError",
    "EngineUnavailableError",
    "NoStableError",
    "RouterError",
    "TargetBusyError",
]
