"""Smoke test of a serving image: run it, wait healthy, check what a release relies on.

    report = smoke_test("canaryflow/serving:cpu-…")          # raises SmokeTestError

Checks: Docker reports healthy (so warmup passed); /v1/models lists the served name; a
chat completion with the key answers 200 (and correctly on the model's golden prompts);
without the key 401; malformed bodies 4xx, never 5xx; the capture file holds the record
with our request id. The key reaches the container only as a read-only mounted file.
`run_container` + `smoke_checks` are the parts, for tests that keep one container up.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx

from infra.image.build import docker_host
from infra.image.errors import SmokeTestError

log = logging.getLogger("canaryflow.image.smoke")

CONTAINER_PORT = "8000/tcp"
SECRET_PATH = "/run/secrets/canaryflow-api-key"  # noqa: S105 (a path, not a secret)
CAPTURE_PATH = "/var/lib/canaryflow/capture"
MODEL_PATH = "/models/model"
ROLE_LABEL = "io.canaryflow.role"
ENV = "CANARYFLOW_SERVING_"


@dataclass(frozen=True)
class Probe:
    """A prompt whose exact answer is known (a golden example)."""

    prompt: str
    answer: str


@dataclass
class ServerHandle:
    """A running serving container, reachable on 127.0.0.1."""

    container: Any
    base_url: str
    api_key: str
    served_model_name: str
    capture_dir: Path
    start_to_healthy_s: float
    user: str


@dataclass
class SmokeReport:
    """What the smoke test measured; `checks` maps each check to what it saw."""

    image: str
    start_to_healthy_s: float
    user: str
    checks: dict[str, str] = field(default_factory=dict)


def docker_client() -> docker.DockerClient:
    return docker.DockerClient(base_url=docker_host(), version="auto", timeout=120)


@contextmanager
def run_container(
    image: str,
    *,
    client: docker.DockerClient | None = None,
    api_key: str | None = None,
    model_dir: Path | None = None,
    served_model_name: str = "model",
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    timeout_s: float = 600,
    capture_tmpfs: str | None = None,
) -> Iterator[ServerHandle]:
    """Start `image` (key as a mounted secret, capture dir mounted), wait healthy, yield.

    `capture_tmpfs`: mount the capture directory as a tmpfs with these options instead
    (e.g. "size=64k", for tests of a full disk); the host `capture_dir` then stays empty.
    """
    client = client or docker_client()
    api_key = api_key or secrets.token_urlsafe(24)
    uid, gid = _image_user(client, image)
    workdir = Path(tempfile.mkdtemp(prefix="canaryflow-smoke-"))
    container = None
    try:
        volumes = _volumes(workdir, api_key, uid, gid, model_dir, capture_tmpfs is None)
        tmpfs = {"/tmp": "rw,exec,nosuid,nodev,size=2g"}  # noqa: S108 (the container's)
        if capture_tmpfs is not None:  # the image user's, like the image's own directory
            tmpfs[CAPTURE_PATH] = f"uid={uid},gid={gid},mode=0755,{capture_tmpfs}"
        environment = {
            f"{ENV}SERVED_MODEL_NAME": served_model_name,
            f"{ENV}VARIANT": "smoke",
            f"{ENV}CPU_KVCACHE_SPACE_GIB": "1",
            **(env or {}),
        }
        start = time.monotonic()
        container = client.containers.run(
            image, detach=True, environment=environment, volumes=volumes,
            ports={CONTAINER_PORT: ("127.0.0.1", None)}, read_only=True, shm_size="1g",
            tmpfs=tmpfs, labels={ROLE_LABEL: "smoke", **(labels or {})},
            name=f"canaryflow-smoke-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        wait_healthy(container, timeout_s)
        yield ServerHandle(
            container=container,
            base_url=_base_url(container),
            api_key=api_key,
            served_model_name=served_model_name,
            capture_dir=workdir / "capture",
            start_to_healthy_s=time.monotonic() - start,
            user=f"{uid}:{gid}",
        )
    finally:
        if container is not None:
            _remove(container)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_healthy(container: Any, timeout_s: float) -> None:
    """Poll Docker's health status; raise SmokeTestError with the log tail on failure."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs["State"]
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return
        if state["Status"] in ("exited", "dead") or health == "unhealthy":
            raise SmokeTestError(
                f"container {container.name} is {health or state['Status']} "
                f"(exit code {state.get('ExitCode')}); log tail:\n{_logs(container)}"
            )
        time.sleep(0.5)
    raise SmokeTestError(
        f"container {container.name} not healthy within {timeout_s:.0f} s; log tail:\n"
        f"{_logs(container)}"
    )


def smoke_checks(
    server: ServerHandle, probes: Sequence[Probe] | None = None, min_correct: int = 1
) -> dict[str, str]:
    """Run every check against a healthy server; returns {check: what it saw}."""
    if probes is None:
        probes = golden_probes(server.container)
    results: dict[str, str] = {}
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        results["models"] = _check_models(http, server)
        results["completion"], request_id = _check_completion(http, server, probes, min_correct)
        results["no_key"] = _check_no_key(http, server)
        results["malformed"] = _check_malformed(http, server)
    results["capture"] = _check_capture(server.capture_dir, request_id)
    return results


def smoke_test(
    image: str,
    *,
    client: docker.DockerClient | None = None,
    model_dir: Path | None = None,
    probes: Sequence[Probe] | None = None,
    min_correct: int = 1,
    served_model_name: str = "model",
    labels: Mapping[str, str] | None = None,
    timeout_s: float = 600,
) -> SmokeReport:
    """Run `image`, pass every smoke check, remove the container; raises SmokeTestError."""
    with run_container(
        image, client=client, model_dir=model_dir, served_model_name=served_model_name,
        labels=labels, timeout_s=timeout_s,
    ) as server:  # fmt: skip
        checks = smoke_checks(server, probes, min_correct)
        return SmokeReport(image, server.start_to_healthy_s, server.user, checks)


def golden_probes(container: Any, n: int = 3) -> list[Probe]:
    """The first `n` golden examples shipped with the model (none if it has no golden set)."""
    code, out = container.exec_run(["head", "-n", str(n), f"{MODEL_PATH}/golden.jsonl"])
    if code != 0:
        return []
    rows = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return [Probe(str(r["prompt"]), str(r["answer"])) for r in rows]


def _fail(check: str, detail: str) -> SmokeTestError:
    return SmokeTestError(f"smoke check '{check}' failed: {detail}")


def _auth(server: ServerHandle) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def _chat(server: ServerHandle, prompt: str) -> dict[str, Any]:
    return {
        "model": server.served_model_name,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 8,
        "temperature": 0,
    }


def _check_models(http: httpx.Client, server: ServerHandle) -> str:
    resp = http.get("/v1/models", headers=_auth(server))
    ids = [m.get("id") for m in resp.json().get("data", [])] if resp.status_code == 200 else []
    if server.served_model_name not in ids:
        raise _fail("models", f"{resp.status_code}, ids {ids}: no '{server.served_model_name}'")
    return f"200, lists {ids}"


def _check_completion(
    http: httpx.Client, server: ServerHandle, probes: Sequence[Probe], min_correct: int
) -> tuple[str, str]:
    """Every probe asked (or one plain prompt); returns (detail, last request id)."""
    asked = list(probes) or [Probe("1+1", "")]
    correct, seen, request_id = 0, [], ""
    for probe in asked:
        request_id = f"smoke-{uuid.uuid4().hex}"
        headers = {**_auth(server), "X-Request-ID": request_id}
        resp = http.post("/v1/chat/completions", json=_chat(server, probe.prompt), headers=headers)
        if resp.status_code != 200:
            raise _fail("completion", f"{resp.status_code}: {resp.text[:300]}")
        if resp.headers.get("x-request-id") != request_id:
            raise _fail("completion", f"X-Request-ID not echoed: {resp.headers}")
        answer = resp.json()["choices"][0]["message"]["content"] or ""
        seen.append(f"{probe.prompt}={answer!r}")
        correct += int(bool(probe.answer) and answer.strip() == probe.answer)
    if probes and correct < min_correct:
        raise _fail("completion", f"{correct}/{len(asked)} correct (need {min_correct}): {seen}")
    return f"200, {correct}/{len(probes)} golden correct: {', '.join(seen)}", request_id


def _check_no_key(http: httpx.Client, server: ServerHandle) -> str:
    resp = http.post("/v1/chat/completions", json=_chat(server, "1+1"))
    if resp.status_code != 401:
        raise _fail("no_key", f"expected 401 without a key, got {resp.status_code}")
    return "401"


def _check_malformed(http: httpx.Client, server: ServerHandle) -> str:
    headers = {**_auth(server), "Content-Type": "application/json"}
    bodies = {
        "invalid JSON": b"{not json",
        "no messages": json.dumps({"model": server.served_model_name}).encode(),
        "wrong types": json.dumps({"model": 3, "messages": "x", "max_tokens": "many"}).encode(),
    }
    seen = []
    for name, body in bodies.items():
        status = http.post("/v1/chat/completions", content=body, headers=headers).status_code
        if not 400 <= status < 500:
            raise _fail("malformed", f"{name} body answered {status}, expected 4xx")
        seen.append(f"{name}: {status}")
    return ", ".join(seen)


def _check_capture(capture_dir: Path, request_id: str, timeout_s: float = 15) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in sorted(capture_dir.glob("*.jsonl")):
            for line in path.read_text().splitlines():
                if request_id in line:
                    record = json.loads(line)
                    if record.get("request_id") == request_id:
                        return f"record in {path.name}: status {record['status']}"
        time.sleep(0.25)
    raise _fail("capture", f"no record with request id {request_id} in {capture_dir}")


def _image_user(client: docker.DockerClient, image: str) -> tuple[int, int]:
    user = str(client.images.get(image).attrs["Config"].get("User") or "")
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or int(uid) == 0:
        raise SmokeTestError(
            f"image {image} runs as '{user or 'root'}': expected a numeric non-root uid"
        )
    return int(uid), int(gid or uid)


def _volumes(
    workdir: Path,
    api_key: str,
    uid: int,
    gid: int,
    model_dir: Path | None,
    bind_capture: bool = True,
) -> dict[str, dict[str, str]]:
    """Secret file (0400, owned by the image user), capture dir, optional model (read-only)."""
    workdir.chmod(0o700)
    secret = workdir / "api-key"
    secret.write_text(api_key)
    capture = workdir / "capture"
    capture.mkdir()
    for path, mode in ((secret, 0o400), (capture, 0o700)):
        _give(path, uid, gid, mode)
    volumes = {str(secret): {"bind": SECRET_PATH, "mode": "ro"}}
    if bind_capture:
        volumes[str(capture)] = {"bind": CAPTURE_PATH, "mode": "rw"}
    if model_dir is not None:
        volumes[str(_readable_model(model_dir, workdir))] = {"bind": MODEL_PATH, "mode": "ro"}
    return volumes


def _give(path: Path, uid: int, gid: int, mode: int) -> None:
    """chown to the image user; without root, open the mode up (the parent dir is 0700)."""
    try:
        os.chown(path, uid, gid)
        path.chmod(mode)
    except PermissionError:
        path.chmod(mode | (0o044 if path.is_file() else 0o077))


def _readable_model(model_dir: Path, workdir: Path) -> Path:
    """`model_dir` if the image user can read every file, else a world-readable copy."""
    files = [p for p in model_dir.rglob("*") if p.is_file()]
    if all(p.stat().st_mode & 0o004 for p in files):
        return model_dir
    copy = workdir / "model"
    shutil.copytree(model_dir, copy)
    for p in copy.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    copy.chmod(0o755)
    return copy


def _base_url(container: Any) -> str:
    container.reload()
    binding = container.attrs["NetworkSettings"]["Ports"][CONTAINER_PORT][0]
    return f"http://127.0.0.1:{binding['HostPort']}"


def _logs(container: Any, lines: int = 40) -> str:
    try:
        return str(container.logs(tail=lines).decode(errors="replace"))
    except docker.errors.DockerException as exc:
        return f"(logs unavailable: {exc})"


def _remove(container: Any) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.DockerException as exc:
        log.warning("could not remove container %s: %s", container.name, exc)
