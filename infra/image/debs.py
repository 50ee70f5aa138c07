"""System packages for the image, fetched on the host like the wheelhouse (no network in build).

The cpu image needs `libnuma1` (vLLM's CPU kernels link it) and the bootstrapped base image
lacks it. `ensure_debs` runs `apt-get download` of serving/system-packages.txt on the host
(a Debian bookworm host, like the base) into a cache directory keyed by the list and the
host's release; the gpu image takes its libraries from the official vLLM image.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from infra.image.errors import ImageBuildError
from infra.image.wheelhouse import ROOT, Flavor

PACKAGE_LIST = ROOT / "serving" / "system-packages.txt"


def packages(flavor: Flavor, package_list: Path = PACKAGE_LIST) -> list[str]:
    if flavor != "cpu":
        return []
    lines = (line.split("#")[0].strip() for line in package_list.read_text().splitlines())
    return [line for line in lines if line]


def debs_key(flavor: Flavor) -> str:
    """Names the deb set: the package list and the host's Debian release (apt picks versions)."""
    try:
        release = platform.freedesktop_os_release().get("VERSION_CODENAME", "unknown")
    except OSError:
        release = "unknown"
    return hashlib.sha256(f"{release}\n{' '.join(packages(flavor))}".encode()).hexdigest()[:16]


def ensure_debs(flavor: Flavor, cache_dir: Path, progress: Callable[[str], None] = print) -> Path:
    """A directory holding the .deb files for `flavor` (possibly none)."""
    names = packages(flavor)
    dest = cache_dir / "debs" / f"{flavor}-{debs_key(flavor)}"
    if (dest / ".complete").exists():
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if names:
        progress(f"debs: apt-get download {' '.join(names)} on the host")
        proc = subprocess.run(
            ["apt-get", "download", *names], cwd=tmp, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ImageBuildError(
                f"debs: `apt-get download {' '.join(names)}` failed on this host: "
                f"{proc.stderr.strip()[-500:]}; on a non-Debian host use a base image that "
                f"already has them (BASE_IMAGE) and an empty {PACKAGE_LIST.name}"
            )
    (tmp / ".complete").touch()
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
