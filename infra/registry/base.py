"""The model registry contract: what the release pipeline needs from MLflow, and nothing more.

A registered model has numbered versions; each version is one immutable bundle of model files
named by its content digest (the sha256 manifest written at package time). Aliases
(`challenger`, `champion`) point at versions and are the truth about what is released.

Backends: `MlflowRegistry` (mlflow_registry.py) and `FakeRegistry` (fake.py, in memory, for
unit tests). Both keep the same promises:

- `register` is idempotent on content: identical files give back the existing version.
- a version is either fully registered (files, tags, alias) or not at all.
- a missing version or alias raises `ModelVersionNotFoundError` naming what exists;
  an unreachable store raises `RegistryUnreachableError` before anything is written.

Usage::

    registry: ModelRegistry = MlflowRegistry("sqlite:////var/lib/canaryflow/mlflow.db")
    mv = registry.register("tiny-chat", Path("out/v2"), {"git.sha": sha}, alias="challenger")
    registry.set_alias("tiny-chat", CHAMPION, mv.version)   # promote
    registry.set_tags("tiny-chat", mv.version, {"canaryflow.parent_version": "1"})
    registry.reject("tiny-chat", mv.version, ["p95 latency +40% vs stable"])  # or roll back
    champion = registry.get_by_alias("tiny-chat", CHAMPION)
    model_dir = registry.download("tiny-chat", champion.version, Path("/srv/models/tiny-chat"))
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from infra.errors import ChecksumMismatchError
from validation import manifest

CHALLENGER = "challenger"
CHAMPION = "champion"

DIGEST_TAG = "canaryflow.digest"
REJECTED_TAG = "canaryflow.rejected"
REJECTED_REASONS_TAG = "canaryflow.rejected_reasons"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, as the registry knows it right now."""

    name: str
    version: str
    """MLflow's version number as a string ("1", "2", …)."""
    digest: str
    """sha256 content digest of the model files (validation.manifest.digest)."""
    source: str
    """Where the files live (an artifact URI for MLflow, `memory://…` for the fake)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    run_id: str | None = None

    @property
    def rejected(self) -> bool:
        return self.tags.get(REJECTED_TAG) == "true"

    @property
    def uri(self) -> str:
        """`models:/name/version`, the form a ReleaseSpec accepts."""
        return f"models:/{self.name}/{self.version}"


@runtime_checkable
class ModelRegistry(Protocol):
    def register(
        self,
        name: str,
        model_dir: Path,
        tags: Mapping[str, str] | None = None,
        *,
        alias: str | None = None,
    ) -> ModelVersion:
        """Register `model_dir` (writing its sha256 manifest if absent) as a new version of
        `name`, or return the version that already holds identical content; then point
        `alias` at it if given. Refuses to alias a rejected version."""
        ...

    def get(self, name: str, version: str) -> ModelVersion:
        """The version, or `ModelVersionNotFoundError`."""
        ...

    def get_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version `alias` points at, or `ModelVersionNotFoundError` listing the aliases."""
        ...

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` at `version` (moving it if it points elsewhere); one atomic step."""
        ...

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove `alias`; a no-op if it does not exist."""
        ...

    def set_tags(self, name: str, version: str, tags: Mapping[str, str]) -> ModelVersion:
        """Add or overwrite `tags` on the version (lineage written after registration)."""
        ...

    def reject(self, name: str, version: str, reasons: Sequence[str]) -> ModelVersion:
        """Tag the version rejected with `reasons` and drop `challenger` if it points there."""
        ...

    def download(self, name: str, version: str, dst: Path) -> Path:
        """Fetch the version's files into `dst` (absent or empty), verify them against the
        manifest and return `dst`. Nothing is left at `dst` on failure."""
        ...


def describe_aliases(aliases: Mapping[str, str]) -> str:
    return ", ".join(f"{a}→v{v}" for a, v in sorted(aliases.items())) or "none"


def rejected_message(mv: ModelVersion, alias: str) -> str:
    return (
        f"{mv.name} version {mv.version} holds this exact content and was rejected "
        f"({mv.tags.get(REJECTED_REASONS_TAG, 'no reasons recorded')}); refusing to point "
        f"{alias!r} at it: change the model, or clear the {REJECTED_TAG} tag deliberately"
    )


def download_verified(dst: Path, digest: str, fetch: Callable[[Path], Path]) -> Path:
    """Put a verified copy of the files with content `digest` at `dst` and return `dst`.

    `fetch(scratch)` downloads into a scratch directory beside `dst` and returns the directory
    holding the files. They reach `dst` (one rename) only after the manifest verifies and names
    `digest`, so a failed or corrupt download leaves nothing at `dst`. A `dst` that already
    holds exactly this content is returned as is, which makes a retried download a no-op.
    """
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        if (dst / manifest.MANIFEST_FILE).is_file() and manifest.verify(dst) == digest:
            return dst
        raise ChecksumMismatchError(
            f"{dst} already exists with other content; download into a new or empty directory"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    try:
        files = fetch(scratch)
        got = manifest.verify(files)
        if got != digest:
            raise ChecksumMismatchError(
                f"downloaded files have digest {got}, the registry records {digest}: "
                "the stored artifacts were changed after registration; re-register the model"
            )
        if dst.exists():
            dst.rmdir()
        files.rename(dst)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dst
