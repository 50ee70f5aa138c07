"""sha256 manifest of a model directory: written at package time, re-checked at deploy time."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from infra.errors import ChecksumMismatchError, MissingFileError

MANIFEST_FILE = "canaryflow_manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def compute(model_dir: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in `model_dir` except the manifest itself."""
    return {
        p.relative_to(model_dir).as_posix(): sha256_file(p)
        for p in sorted(model_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }


def digest(manifest: dict[str, str]) -> str:
    """One sha256 naming the whole content: equal digests mean identical model files."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def write(model_dir: Path) -> str:
    """Write the manifest into `model_dir`; returns the content digest."""
    manifest = compute(model_dir)
    (model_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return digest(manifest)


def verify(model_dir: Path) -> str:
    """Re-hash `model_dir` against its manifest; returns the digest or raises naming the files."""
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise MissingFileError(
            f"{path} is missing: the model was not packaged by canaryflow; run the package step"
        )
    expected: dict[str, str] = json.loads(path.read_text())
    actual = compute(model_dir)
    changed = sorted(k for k in expected if actual.get(k) != expected[k] and k in actual)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if changed or missing or extra:
        raise ChecksumMismatchError(
            f"{model_dir} differs from its manifest: changed={changed} missing={missing} "
            f"extra={extra}; re-download the model version or re-package it"
        )
    return digest(expected)
