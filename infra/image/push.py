"""Push the built serving image to the registry the cluster's nodes pull from, by digest.

    pushed = push_image("canaryflow/serving:cpu-0123abcd", "registry.example:5000/llm")
    pushed.reference    # registry.example:5000/llm/serving@sha256:…  (what the Deployment pins)
    pushed.digest       # sha256:… as the registry computed it

The local tag is re-tagged REGISTRY/<last path part of the repository>:<tag> and pushed
through canaryflow's Docker engine with the Docker SDK (streamed; Docker's own push, so
its credential store, TLS settings and insecure-registries apply: 127.0.0.0/8 is plain HTTP
by default). The digest is the one the registry answered (the push's `aux` record), so the
Deployment pulls exactly the bytes that were smoke-tested, whatever happens to the tag. A
refused push (unreachable, unauthorised, not a registry) is ImagePushError with the
registry's words; it is raised before anything is applied to the cluster.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from infra.errors import ImagePushError
from infra.image.build import docker_api

log = logging.getLogger("canaryflow.image")
REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class PushedImage:
    """The image as the registry holds it."""

    tag: str  # REGISTRY/NAME:TAG
    digest: str  # sha256:…
    size_bytes: int | None

    @property
    def reference(self) -> str:
        """REGISTRY/NAME@sha256:… — immutable, what pods pull."""
        return f"{self.tag.rsplit(':', 1)[0]}@{self.digest}"


def remote_tag(local_tag: str, registry: str) -> str:
    """Where `local_tag` goes in `registry` (host[:port][/path], checked here too)."""
    registry = registry.rstrip("/")
    if not REGISTRY.match(registry):
        raise ImagePushError(
            f"serving.registry {registry!r} is not a registry address: write host[:port][/path], "
            "e.g. registry.example.com:5000/llm (no scheme, no tag)"
        )
    repository, _, tag = local_tag.rpartition(":")
    if not repository or "/" in tag:
        raise ImagePushError(f"{local_tag!r} is not a tagged local image (NAME:TAG)")
    return f"{registry}/{repository.rsplit('/', 1)[-1]}:{tag}"


def push_image(
    local_tag: str, registry: str, *, api: docker.APIClient | None = None
) -> PushedImage:
    """Tag `local_tag` into `registry`, push it, return the registry's digest."""
    target = remote_tag(local_tag, registry)
    api = api or docker_api()
    repository, _, tag = target.rpartition(":")
    try:
        api.tag(local_tag, repository, tag)
        stream = api.push(repository, tag=tag, stream=True, decode=True)
        digest, size = _follow(stream, target)
    except docker.errors.ImageNotFound as exc:
        raise ImagePushError(f"no local image {local_tag}: build it first ({exc})") from exc
    except docker.errors.APIError as exc:
        raise ImagePushError(f"push of {target} refused by the Docker engine: {exc}") from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise ImagePushError(
            f"push of {target}: the Docker engine does not answer ({exc}); check DOCKER_HOST"
        ) from exc
    log.info("pushed %s (%s)", target, digest)
    return PushedImage(target, digest, size)


def _follow(stream: Iterable[dict[str, Any]], target: str) -> tuple[str, int | None]:
    """The digest from a decoded push stream; ImagePushError on an `error` item."""
    digest, size = "", None
    for item in stream:
        if "error" in item or "errorDetail" in item:
            message = item.get("error") or (item.get("errorDetail") or {}).get("message")
            raise ImagePushError(
                f"registry refused the push of {target}: {message}. Check that serving.registry "
                "is reachable from this machine, that `docker login` holds credentials for it, "
                "and (plain HTTP) that the engine lists it in insecure-registries"
            )
        aux = item.get("aux") or {}
        if aux.get("Digest"):
            digest, size = str(aux["Digest"]), aux.get("Size")
    if not DIGEST.match(digest):
        raise ImagePushError(f"push of {target} ended without a digest from the registry")
    return digest, int(size) if size is not None else None
