"""Named errors of the router plumbing (defined in infra/errors.py)."""

from __future__ import annotations

from infra.errors import RouterError

__all__ = ["RouterError"]
