"""Build the serving image through the Docker SDK, tagged by content digest.

    built = build_image(Path("models/v3"))                 # cpu, model baked
    built.tag        # canaryflow/serving:cpu-<16 hex of the content digest>
    built.built      # False when that tag already existed: an unchanged rebuild is a no-op

Order: resolve the base image (local, else pull, else the local bootstrap), compute the
content digest (no download needed), return at once if the tag exists, else make sure the
wheelhouse is cached, prepare a small context and stream `docker build` (network "none").
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from infra.image.context import ContextSpec, ModelMode, content_digest, context_size, prepare
from infra.image.debs import debs_key, ensure_debs
from infra.image.errors import ImageBuildError
from infra.image.wheelhouse import ROOT, Flavor, ensure_wheelhouse, requirements

log = logging.getLogger("canaryflow.image")

DEFAULT_REPOSITORY = "canaryflow/serving"
DEFAULT_CPU_BASE = "canaryflow/base:bookworm"
DEFAULT_DOCKER_HOST = "unix:///run/canaryflow-docker.sock"
# The gpu base must be pinned by digest; fill in GPU_BASE_DIGEST where a registry is
# reachable (`docker buildx imagetools inspect vllm/vllm-openai:v0.32.0`) or pass
# base_image="vllm/vllm-openai:v0.32.0@sha256:...".
GPU_BASE_IMAGE = "vllm/vllm-openai:v0.32.0"
GPU_BASE_DIGEST = ""
LABEL = "io.canaryflow"
BUILD_TIMEOUT_S = 3600


@dataclass(frozen=True)
class BuiltImage:
    """The image a build produced (or found already built)."""

    tag: str
    image_id: str
    digest: str
    model_checksum: str
    flavor: Flavor
    model_mode: ModelMode
    built: bool
    size_bytes: int
    wheelhouse_s: float = 0.0
    build_s: float = 0.0


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def docker_api() -> docker.APIClient:
    """Low-level client on canaryflow's engine (DOCKER_HOST wins)."""
    return docker.APIClient(base_url=docker_host(), version="auto", timeout=BUILD_TIMEOUT_S)


def build_image(
    model_dir: Path | None,
    *,
    flavor: Flavor = "cpu",
    model_mode: ModelMode = "baked",
    base_image: str | None = None,
    repository: str = DEFAULT_REPOSITORY,
    cache_dir: Path = ROOT / ".cache",
    api: docker.APIClient | None = None,
    progress: Callable[[str], None] = log.info,
) -> BuiltImage:
    """Build (or find) the serving image for `model_dir`; raises ImageBuildError."""
    api = api or docker_api()
    base = resolve_base(flavor, base_image)
    spec = ContextSpec(
        flavor,
        model_mode,
        model_dir,
        ensure_base_image(api, base, progress),
        requirements(flavor),
        debs_key(flavor),
    )
    digest, model_sum = content_digest(spec)
    tag = f"{repository}:{flavor}-{digest[:16]}"
    found = _inspect(api, tag)
    if found is not None:
        progress(f"image: {tag} exists (content unchanged): nothing to build")
        return _built(found, tag, digest, model_sum, spec, built=False)
    start = time.monotonic()
    wheelhouse = ensure_wheelhouse(flavor, cache_dir, progress=progress)
    debs = ensure_debs(flavor, cache_dir, progress)
    wheelhouse_s = time.monotonic() - start
    ctx = prepare(spec, wheelhouse, cache_dir / "build-context" / digest[:16], debs)
    try:
        progress(f"image: building {tag} from {base} (context {context_size(ctx) / 1e6:.0f} MB)")
        labels = {
            f"{LABEL}.digest": digest,
            f"{LABEL}.flavor": flavor,
            f"{LABEL}.model.mode": model_mode,
            f"{LABEL}.model.sha256": model_sum,
            f"{LABEL}.base.id": spec.base_image_id,
        }
        run_build(api, ctx, tag, {"BASE_IMAGE": base, "FLAVOR": flavor}, labels, progress)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    build_s = time.monotonic() - start - wheelhouse_s
    image = _inspect(api, tag)
    if image is None:
        raise ImageBuildError(f"docker build reported success but {tag} does not exist")
    progress(f"image: built {tag} in {build_s:.0f} s ({image['Size'] / 1e9:.2f} GB)")
    return _built(image, tag, digest, model_sum, spec, True, wheelhouse_s, build_s)


def run_build(
    api: docker.APIClient,
    ctx: Path,
    tag: str,
    buildargs: dict[str, str],
    labels: dict[str, str],
    progress: Callable[[str], None],
) -> None:
    """`docker build` of the prepared context, target = flavor, no network in RUN steps."""
    try:
        stream = api.build(
            path=str(ctx), tag=tag, target=buildargs["FLAVOR"], labels=labels, decode=True,
            rm=True, forcerm=True, pull=False, network_mode="none", timeout=BUILD_TIMEOUT_S,
            buildargs=buildargs,
        )  # fmt: skip
        follow_build(stream, tag, progress)
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"docker build of {tag} failed: {exc}") from exc


def follow_build(
    stream: Iterable[dict[str, Any]], tag: str, progress: Callable[[str], None]
) -> str | None:
    """Print the build output readably; raise ImageBuildError on an `error` item."""
    start = time.monotonic()
    tail: deque[str] = deque(maxlen=30)
    image_id: str | None = None
    for item in stream:
        if "error" in item:
            detail = item.get("errorDetail", {}).get("message") or item["error"]
            raise ImageBuildError(
                f"docker build of {tag} failed: {str(detail).strip()}\n"
                "last output:\n" + "\n".join(tail)
            )
        if isinstance(item.get("aux"), dict):
            image_id = item["aux"].get("ID", image_id)
        for line in str(item.get("stream", "")).splitlines():
            if line.strip():
                tail.append(line)
                progress(f"[{time.monotonic() - start:5.0f}s] {line.rstrip()}")
    return image_id


def resolve_base(flavor: Flavor, base_image: str | None) -> str:
    """The base image reference for `flavor` (explicit > BASE_IMAGE env > default)."""
    if base_image:
        return base_image
    if flavor == "cpu":
        return os.environ.get("BASE_IMAGE") or DEFAULT_CPU_BASE
    pinned = os.environ.get("CANARYFLOW_GPU_BASE_IMAGE") or (
        f"{GPU_BASE_IMAGE}@{GPU_BASE_DIGEST}" if GPU_BASE_DIGEST else ""
    )
    if "@sha256:" not in pinned:
        raise ImageBuildError(
            "gpu flavor: the official vLLM base must be pinned by digest: pass base_image="
            f"'{GPU_BASE_IMAGE}@sha256:<digest>' or set CANARYFLOW_GPU_BASE_IMAGE"
        )
    return pinned


def ensure_base_image(
    api: docker.APIClient, base: str, progress: Callable[[str], None] = log.info
) -> str:
    """The base image's id: present locally, else pulled, else bootstrapped (default only)."""
    found = _inspect(api, base)
    if found is not None:
        return str(found["Id"])
    progress(f"base image {base} not present locally: trying to pull it")
    try:
        api.pull(base)
    except docker.errors.DockerException as exc:
        if base != DEFAULT_CPU_BASE:
            raise ImageBuildError(
                f"base image {base} is neither local nor pullable ({exc}); load it with "
                f"`docker load` or use BASE_IMAGE={DEFAULT_CPU_BASE} (bootstrapped locally)"
            ) from exc
        _bootstrap_base(progress)
    found = _inspect(api, base)
    if found is None:
        raise ImageBuildError(f"base image {base} still missing after pull/bootstrap")
    return str(found["Id"])


def _bootstrap_base(progress: Callable[[str], None]) -> None:
    script = ROOT / "infra" / "bootstrap" / "base-image.sh"
    progress(f"base image: bootstrapping {DEFAULT_CPU_BASE} with {script} (about a minute)")
    env = {**os.environ, "DOCKER_HOST": docker_host(), "CANARYFLOW_BASE_IMAGE": DEFAULT_CPU_BASE}
    proc = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(f"base image bootstrap failed:\n{proc.stderr[-2000:]}")


def _inspect(api: docker.APIClient, ref: str) -> dict[str, Any] | None:
    try:
        return dict(api.inspect_image(ref))
    except docker.errors.ImageNotFound:
        return None


def _built(
    image: dict[str, Any],
    tag: str,
    digest: str,
    model_sum: str,
    spec: ContextSpec,
    built: bool,
    wheelhouse_s: float = 0.0,
    build_s: float = 0.0,
) -> BuiltImage:
    return BuiltImage(
        tag=tag,
        image_id=str(image["Id"]),
        digest=digest,
        model_checksum=model_sum,
        flavor=spec.flavor,
        model_mode=spec.model_mode,
        built=built,
        size_bytes=int(image.get("Size", 0)),
        wheelhouse_s=wheelhouse_s,
        build_s=build_s,
    )
