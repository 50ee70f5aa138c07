"""Named errors of the image step (defined in infra/errors.py)."""

from __future__ import annotations

from infra.errors import ImageBuildError, SmokeTestError

__all__ = ["ImageBuildError", "SmokeTestError"]
