"""The serving image reaches the cluster's registry by digest: Debian's docker-registry (2.8)
on loopback, pushed through canaryflow's Docker engine (issue 16, item 4).

Run under the global lock: flock /tmp/canaryflow-e2e.lock .venv/bin/python -m pytest
tests/e2e/test_image_push.py. Needs `apt-get install docker-registry` (skipped without it).
The image pushed is a one-file image imported for the test (the serving image's bytes are
not what is under test, and a 300 MB push would only make the tier slower).
"""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from infra.errors import ImagePushError
from infra.image.push import push_image

pytestmark = pytest.mark.e2e
REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_registry(root: Path, readonly: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        "storage:\n"
        f"  filesystem: {{rootdirectory: {root / 'data'}}}\n"
        f"  maintenance: {{readonly: {{enabled: {str(readonly).lower()}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{address}/v2/", timeout=1).status_code == 200:
                return proc, address
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(
        f"docker-registry did not answer on {address}: {(root / 'registry.log').read_text()}"
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    if not Path(REGISTRY_BIN).exists():
        pytest.skip("Debian's docker-registry is not installed (apt-get install docker-registry)")
    proc, address = _start_registry(tmp_path)
    yield address
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def tiny_image(docker_client: docker.DockerClient) -> Iterator[str]:
    """A one-file local image NAME:TAG, removed (with every tag pushed from it) afterwards."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        payload = f"canaryflow push test {uuid.uuid4()}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    tag = f"canaryflow-test/serving:push-{uuid.uuid4().hex[:12]}"
    repository, _, version = tag.rpartition(":")
    docker_client.api.import_image_from_data(data.getvalue(), repository=repository, tag=version)
    yield tag
    image = docker_client.images.get(tag)
    for t in image.tags:
        docker_client.images.remove(t, force=True)


def test_push_returns_the_registrys_digest_and_nodes_can_pull_by_it(
    registry: str, tiny_image: str, docker_client: docker.DockerClient
) -> None:
    pushed = push_image(tiny_image, f"{registry}/canaryflow")
    assert pushed.tag == f"{registry}/canaryflow/serving:{tiny_image.rsplit(':', 1)[1]}"
    assert pushed.reference == f"{registry}/canaryflow/serving@{pushed.digest}"
    tag = pushed.tag.rsplit(":", 1)[1]
    head = httpx.head(
        f"http://{registry}/v2/canaryflow/serving/manifests/{tag}",
        headers={"Accept": MANIFEST_TYPES},
    )
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == pushed.digest
    # a node pulls exactly that digest (here: the same engine, after dropping its copy)
    docker_client.images.remove(pushed.tag)
    pulled = docker_client.images.pull(pushed.reference)
    assert pushed.reference in pulled.attrs["RepoDigests"]
    docker_client.images.remove(pushed.reference)
    again = push_image(tiny_image, f"{registry}/canaryflow")  # idempotent
    assert again.digest == pushed.digest


def test_a_refusing_registry_is_a_named_error(tmp_path: Path, tiny_image: str) -> None:
    if not Path(REGISTRY_BIN).exists():
        pytest.skip("Debian's docker-registry is not installed (apt-get install docker-registry)")
    proc, address = _start_registry(tmp_path, readonly=True)
    try:
        with pytest.raises(
            ImagePushError, match=r"registry refused the push .*insecure-registries"
        ):
            push_image(tiny_image, f"{address}/canaryflow")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_an_unreachable_registry_is_a_named_error(tiny_image: str) -> None:
    with pytest.raises(ImagePushError, match="refused"):
        push_image(tiny_image, f"127.0.0.1:{_free_port()}/canaryflow")
