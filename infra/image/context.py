"""The build context: a small prepared directory (never the repository) and its content digest.

    context/
      Dockerfile            serving/Dockerfile
      install_venv.sh       serving/install_venv.sh
      requirements.txt      exact pins (the serving lock for cpu)
      wheelhouse/           hard links into the cached wheelhouse
      debs/                 system packages the base lacks (libnuma1 for cpu)
      serving/              the serving package (*.py only)
      model/                the model files (baked) or nothing (mounted at run time)

The digest names everything the image is made of: model checksum (the sha256 manifest
digest), serving code, pins, base image id, flavor and model mode. Wheels are covered by
the pins, so the digest (and the no-op check) needs no download.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infra.image.errors import ImageBuildError
from infra.image.wheelhouse import ROOT, Flavor
from validation import manifest

SERVING_DIR = ROOT / "serving"
BUILD_FILES = ("Dockerfile", "install_venv.sh")
DIGEST_SCHEMA = 1
ModelMode = Literal["baked", "mounted"]


@dataclass(frozen=True)
class ContextSpec:
    """What goes into one image."""

    flavor: Flavor
    model_mode: ModelMode
    model_dir: Path | None
    base_image_id: str
    requirements: str
    debs_key: str = ""

    def __post_init__(self) -> None:
        if self.model_mode == "baked" and self.model_dir is None:
            raise ImageBuildError("model_mode='baked' needs a model_dir to bake")


def serving_files(serving_dir: Path = SERVING_DIR) -> dict[str, Path]:
    """{path in the context: source} for the serving package's Python files."""
    return {
        f"serving/{p.relative_to(serving_dir).as_posix()}": p
        for p in sorted(serving_dir.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def model_checksum(spec: ContextSpec) -> str:
    """The model's manifest digest (same as the package step's), or 'mounted'."""
    if spec.model_mode == "mounted" or spec.model_dir is None:
        return "mounted"
    if not (spec.model_dir / "config.json").is_file():
        raise ImageBuildError(f"{spec.model_dir} has no config.json: not a model directory")
    return manifest.digest(manifest.compute(spec.model_dir))


def content_digest(spec: ContextSpec, serving_dir: Path = SERVING_DIR) -> tuple[str, str]:
    """(digest of everything the image is made of, model checksum)."""
    model_sum = model_checksum(spec)
    parts = {
        "schema": DIGEST_SCHEMA,
        "flavor": spec.flavor,
        "model_mode": spec.model_mode,
        "model": model_sum,
        "base_image_id": spec.base_image_id,
        "requirements": hashlib.sha256(spec.requirements.encode()).hexdigest(),
        "debs": spec.debs_key,
        "files": {
            name: manifest.sha256_file(path)
            for name, path in {**_build_files(serving_dir), **serving_files(serving_dir)}.items()
        },
    }
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest(), model_sum


def prepare(
    spec: ContextSpec,
    wheelhouse: Path,
    dest: Path,
    debs: Path | None = None,
    serving_dir: Path = SERVING_DIR,
) -> Path:
    """Fill `dest` with the build context; returns it."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name, src in {**_build_files(serving_dir), **serving_files(serving_dir)}.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
        (dest / name).chmod(0o755 if name.endswith(".sh") else 0o644)
    (dest / "requirements.txt").write_text(spec.requirements)
    _link_tree(wheelhouse, dest / "wheelhouse", pattern="*.whl")
    (dest / "debs").mkdir()
    for deb in sorted(debs.glob("*.deb")) if debs is not None else []:
        shutil.copy2(deb, dest / "debs" / deb.name)
    (dest / "model").mkdir()
    if spec.model_mode == "baked" and spec.model_dir is not None:
        _link_tree(spec.model_dir, dest / "model", pattern="**/*")
    return dest


def context_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _build_files(serving_dir: Path) -> dict[str, Path]:
    return {name: serving_dir / name for name in BUILD_FILES}


def _link_tree(src: Path, dest: Path, pattern: str) -> None:
    """Hard-link (or copy across file systems) every file matching `pattern`."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob(pattern)):
        if not path.is_file():
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.stat().st_mode & 0o044 == 0o044:  # world-readable: the image user can read it
            try:
                os.link(path, target)
                continue
            except OSError:
                pass
        shutil.copy2(path, target)
        target.chmod(0o644)
