"""Prefect task: package the candidate in the model registry."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prefect import task

from infra.registry import CHALLENGER, ModelVersion, registry_from_uri
from tasks.retry import RETRY


@task(name="package", **RETRY, timeout_seconds=600)
def package(
    tracking_uri: str,
    name: str,
    model_dir: Path,
    tags: Mapping[str, str],
    alias: str = CHALLENGER,
) -> ModelVersion:
    """Register `model_dir` (idempotent on content) and point `alias` at it."""
    return registry_from_uri(tracking_uri).register(name, model_dir, tags, alias=alias)
