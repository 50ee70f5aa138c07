"""Find the candidate's files: a registered version (downloaded) or a local directory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.controller.model_cache import ModelCache
from infra.errors import ModelVersionNotFoundError, RejectedVersionError, SpecError
from infra.registry.base import (
    CHALLENGER,
    CHAMPION,
    REJECTED_REASONS_TAG,
    ModelRegistry,
    ModelVersion,
)
from infra.spec import ReleaseSpec


@dataclass(frozen=True)
class Candidate:
    """The model a release moves toward `champion`."""

    name: str
    model_dir: Path
    version: str | None = None
    """None until a local directory is registered (package)."""


def resolve(spec: ReleaseSpec, registry: ModelRegistry, work_dir: Path) -> Candidate:
    """models:/NAME/VERSION or models:/NAME@ALIAS → download; a directory → itself.

    A version an earlier release rejected is refused here, before any side effect.
    """
    name, version, alias = spec.model_ref()
    if version is None and alias is None:
        model_dir = Path(spec.model).expanduser()
        if not model_dir.is_dir():
            raise SpecError(f"model {spec.model!r} is neither models:/… nor a directory")
        return Candidate(name=name, model_dir=model_dir.resolve())
    mv = registry.get(name, version) if version else registry.get_by_alias(name, alias or "")
    if mv.rejected:
        why = mv.tags.get(REJECTED_REASONS_TAG, "no reasons recorded")
        raise RejectedVersionError(
            f"{name} v{mv.version} was rejected by an earlier release ({why}); release a new "
            f"version, or delete its tag canaryflow.rejected to retry it deliberately"
        )
    return Candidate(name=name, model_dir=download(registry, mv, work_dir), version=mv.version)


def download(registry: ModelRegistry, mv: ModelVersion, work_dir: Path) -> Path:
    """The version's files under work_dir/models/<content digest> (see model_cache.py):
    a cached copy is reused only when it verifies, whatever the version number now names."""
    cache = ModelCache(work_dir / "models")
    path = cache.fetch(registry, mv)
    cache.prune(keep={mv.digest})
    return path


def champion_dir(registry: ModelRegistry, candidate: Candidate, work_dir: Path) -> Path | None:
    """The champion's files (to score it on the same golden set); None without a champion,
    or when the candidate is the champion itself (a re-release)."""
    try:
        mv = registry.get_by_alias(candidate.name, CHAMPION)
    except ModelVersionNotFoundError:
        return None
    if mv.version == candidate.version:
        return None
    return download(registry, mv, work_dir)


def register(registry: ModelRegistry, candidate: Candidate, tags: Mapping[str, str]) -> Candidate:
    """Register a local candidate as `challenger` (a no-op for an already registered one)."""
    if candidate.version is not None:
        return candidate
    mv = registry.register(candidate.name, candidate.model_dir, tags, alias=CHALLENGER)
    return Candidate(name=mv.name, model_dir=candidate.model_dir, version=mv.version)
