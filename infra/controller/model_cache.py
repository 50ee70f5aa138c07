"""Local copies of registered model files, named by content digest, never by name + version.

    cache = ModelCache(work_dir / "models")
    model_dir = cache.fetch(registry, mv)     # <root>/<digest>: verified, downloaded if absent
    cache.prune(keep={champion.digest})      # drop all but the recent few (and `keep`)

Why digests: a version number names different files once a registry is reset, a second
tracking store is used, or a model is deleted and registered again ("tiny-chat v3" is then
another model). The registry stores each version's content digest (DIGEST_TAG, the sha256
manifest), so a directory named by it can only ever hold those files. A cached directory
that no longer verifies (torn copy, edited file) is replaced, not an error. Reuse re-hashes
the files (the manifest check): seconds for a small model, and the only way to know a cache
entry is what the registry says it is.

Entries are pruned by last use (a fetch touches its directory), keeping the newest
`keep_last` and whatever the caller names. Nothing serving reads these directories: the
serving image holds its own copy of the files (infra/image).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from infra.errors import ArtifactError
from infra.registry.base import ModelRegistry, ModelVersion
from validation import manifest

log = logging.getLogger("canaryflow.model_cache")

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
KEEP_LAST = 4
_PARTIAL_MAX_AGE_S = 6 * 3600.0


class ModelCache:
    """Content-addressed downloads under `root` (see the module doc)."""

    def __init__(self, root: Path, keep_last: int = KEEP_LAST) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.root = Path(root)
        self.keep_last = keep_last

    def path_for(self, mv: ModelVersion) -> Path:
        if not _DIGEST.match(mv.digest):
            raise ArtifactError(
                f"{mv.name} v{mv.version} has no valid content digest in the registry "
                f"({mv.digest!r}); re-register the model so its files can be verified"
            )
        return self.root / mv.digest

    def fetch(self, registry: ModelRegistry, mv: ModelVersion) -> Path:
        """The verified files of `mv`: the cached copy, or a fresh download replacing a bad one."""
        dst = self.path_for(mv)
        if dst.exists():
            if self._holds(dst, mv.digest):
                os.utime(dst)  # last use, for prune
                return dst
            log.warning("cached %s does not verify as %s v%s; downloading it again",
                        dst, mv.name, mv.version)  # fmt: skip
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        return registry.download(mv.name, mv.version, dst)

    def prune(self, keep: Iterable[str] = ()) -> list[Path]:
        """Remove entries beyond the `keep_last` most recently used, except digests in
        `keep`; also leftovers of interrupted downloads. Returns what was removed."""
        if not self.root.is_dir():
            return []
        kept = set(keep)
        entries = sorted((p for p in self.root.iterdir() if _DIGEST.match(p.name)),
                         key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
        doomed = [p for p in entries[self.keep_last :] if p.name not in kept]
        stale = time.time() - _PARTIAL_MAX_AGE_S  # a younger one may be a download under way
        doomed += [p for p in self.root.iterdir() if p.is_dir() and ".partial-" in p.name
                   and p.stat().st_mtime < stale]  # fmt: skip
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
        return doomed

    @staticmethod
    def _holds(path: Path, digest: str) -> bool:
        try:
            return path.is_dir() and manifest.verify(path) == digest
        except (ArtifactError, OSError, ValueError):
            return False
