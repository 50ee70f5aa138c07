"""The Docker target's containers: how they are labelled, named, started, found and removed.

Labels are immutable in Docker, so they hold only what never changes about a container:
target, slot, release id, model name and version, image and image digest, and the role it
was deployed as. The *current* role lives in the container name, which Docker lets us change
atomically and keeps unique per engine:

    canaryflow-NAME-stable            serves as the stable
    canaryflow-NAME-canary            serves as the canary
    canaryflow-NAME-starting-SLOT     created, not yet healthy (never routed to)
    canaryflow-NAME-retiring-SLOT     leaving: drained, then removed

So `list_members` rebuilds the whole truth from the engine alone, and each promote/rollback
step is one rename, which is what makes the steps safe to repeat after a crash.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import docker
import docker.errors

from infra.errors import DeployError
from infra.router.haproxy_config import SLOTS
from infra.targets.base import DeployedVariant, Role, Variant
from infra.targets.docker_config import DockerTargetConfig
from infra.targets.docker_errors import ContainerStartError

log = logging.getLogger("canaryflow.targets.docker")

Phase = Literal["stable", "canary", "starting", "retiring"]
PHASES: tuple[Phase, ...] = ("stable", "canary", "starting", "retiring")

LABEL = "io.canaryflow"
TARGET_LABEL = f"{LABEL}.target"
SLOT_LABEL = f"{LABEL}.slot"
RELEASE_LABEL = f"{LABEL}.release-id"
MODEL_NAME_LABEL = f"{LABEL}.model-name"
MODEL_VERSION_LABEL = f"{LABEL}.model-version"
IMAGE_LABEL = f"{LABEL}.image"
IMAGE_DIGEST_LABEL = f"{LABEL}.image-digest"
DEPLOYED_AS_LABEL = f"{LABEL}.deployed-as"

# Where the serving image expects its secret and capture directory (serving/Dockerfile).
SECRET_PATH = "/run/secrets/canaryflow-api-key"  # noqa: S105 (a path, not a secret)
CAPTURE_PATH = "/var/lib/canaryflow/capture"
ENV = "CANARYFLOW_SERVING_"


@dataclass(frozen=True)
class Naming:
    """Container and network names of one target."""

    target: str

    @property
    def network(self) -> str:
        return f"canaryflow-{self.target}"

    def name(self, phase: Phase, slot: str) -> str:
        base = f"canaryflow-{self.target}-{phase}"
        return base if phase in ("stable", "canary") else f"{base}-{slot}"

    def phase(self, name: str) -> Phase | None:
        rest = name.lstrip("/").removeprefix(f"canaryflow-{self.target}-")
        for phase in PHASES:
            if rest == phase or rest.startswith(f"{phase}-"):
                return phase
        return None


@dataclass(frozen=True)
class Member:
    """One container of the target, as the engine reports it."""

    container: Any
    name: str
    phase: Phase
    slot: str
    labels: dict[str, str]
    status: str
    """Docker's state: running, restarting, exited, ..."""
    health: str | None
    """Docker's health (starting, healthy, unhealthy), None for images without a check."""

    @property
    def healthy(self) -> bool:
        return self.status == "running" and self.health in (None, "healthy")

    def matches(self, variant: Variant) -> bool:
        """True if this container runs exactly `variant` (same release, version, image)."""
        return (
            self.labels.get(RELEASE_LABEL) == variant.release_id
            and self.labels.get(MODEL_NAME_LABEL) == variant.model_name
            and self.labels.get(MODEL_VERSION_LABEL) == variant.model_version
            and self.labels.get(IMAGE_LABEL) == variant.image
        )

    def deployed(self) -> DeployedVariant:
        role: Role = "stable" if self.phase == "stable" else "canary"
        return DeployedVariant(
            role=role,
            model_version=self.labels.get(MODEL_VERSION_LABEL, ""),
            image=self.labels.get(IMAGE_LABEL, ""),
            release_id=self.labels.get(RELEASE_LABEL, ""),
            healthy=self.healthy,
            model_name=self.labels.get(MODEL_NAME_LABEL, ""),
        )


@dataclass(frozen=True)
class View:
    """Every container of the target at one moment."""

    members: tuple[Member, ...]

    def of(self, phase: Phase) -> list[Member]:
        return [m for m in self.members if m.phase == phase]

    @property
    def stable(self) -> Member | None:
        return next(iter(self.of("stable")), None)

    @property
    def canary(self) -> Member | None:
        return next(iter(self.of("canary")), None)

    def free_slot(self) -> str:
        taken = {m.slot for m in self.members}
        for slot in SLOTS:
            if slot not in taken:
                return slot
        raise DeployError(f"both slots are taken by {[m.name for m in self.members]}")


def from_container(container: Any, naming: Naming) -> Member | None:
    """The member a listed container is, or None if its name is not one of ours."""
    phase = naming.phase(container.name)
    labels = dict(container.labels or {})
    if phase is None or labels.get(SLOT_LABEL) not in SLOTS:
        return None
    state = container.attrs.get("State", {})
    return Member(
        container=container,
        name=container.name,
        phase=phase,
        slot=labels[SLOT_LABEL],
        labels=labels,
        status=str(state.get("Status", container.status)),
        health=(state.get("Health") or {}).get("Status"),
    )


def list_members(client: docker.DockerClient, naming: Naming) -> View:
    found = client.containers.list(
        all=True, filters={"label": f"{TARGET_LABEL}={naming.target}"}, ignore_removed=True
    )
    members = [m for c in found if (m := from_container(c, naming)) is not None]
    return View(tuple(sorted(members, key=lambda m: m.name)))


def ensure_network(client: docker.DockerClient, naming: Naming, labels: dict[str, str]) -> None:
    if client.networks.list(names=[naming.network]):
        return
    client.networks.create(
        naming.network, driver="bridge", labels={TARGET_LABEL: naming.target, **labels}
    )


def start(
    client: docker.DockerClient,
    config: DockerTargetConfig,
    variant: Variant,
    role: Role,
    slot: str,
) -> Member:
    """Create and start `variant` in `slot` under its `starting` name."""
    naming = Naming(config.name)
    image = _image(client, variant.image)
    uid, gid = _image_user(image)
    port = config.slot_port_map()[slot]
    try:
        container = client.containers.run(
            variant.image,
            detach=True,
            name=naming.name("starting", slot),
            labels=_labels(config, variant, role, slot, str(image.id)),
            environment=_environment(config, variant, role, slot),
            network=naming.network,
            ports={f"{config.container_port}/tcp": ("127.0.0.1", port)},
            volumes=_volumes(config, slot, uid, gid),
            read_only=True,
            tmpfs={"/tmp": "rw,exec,nosuid,nodev,size=2g"},  # noqa: S108 (inside the container)
            restart_policy={"Name": "unless-stopped"},
            cpuset_cpus=config.cpuset(slot),
            mem_limit=config.mem_limit,
            shm_size=config.shm_size,
        )
    except docker.errors.APIError as exc:
        hint = ""
        if "already allocated" in str(exc) or "address already in use" in str(exc):
            hint = f": port {port} on 127.0.0.1 is in use; free it or set other slot_ports"
        raise ContainerStartError(
            f"could not start {variant.image} in slot {slot}{hint}: {exc}"
        ) from exc
    member = from_container(container, naming)
    assert member is not None
    return member


def wait_healthy(member: Member, timeout_s: float) -> None:
    """Until Docker reports the container healthy; ContainerStartError with its log otherwise."""
    container = member.container
    deadline = time.monotonic() + timeout_s
    while True:
        container.reload()
        state = container.attrs["State"]
        health = (state.get("Health") or {}).get("Status")
        if state["Status"] == "running" and health in (None, "healthy"):
            return
        failed = state["Status"] in ("exited", "dead") or health == "unhealthy"
        if failed or time.monotonic() > deadline:
            what = health or state["Status"] if failed else f"not healthy after {timeout_s:.0f} s"
            raise ContainerStartError(
                f"container {container.name} ({member.labels.get(IMAGE_LABEL)}) is {what} "
                f"(exit code {state.get('ExitCode')}); last log lines:\n{logs(container)}"
            )
        time.sleep(0.5)


def rename(member: Member, naming: Naming, phase: Phase) -> Member:
    name = naming.name(phase, member.slot)
    if member.name != name:
        member.container.rename(name)
        log.info("renamed %s -> %s", member.name, name)
    return replace(member, name=name, phase=phase)


def remove(member: Member, grace_s: int) -> None:
    """Stop (SIGTERM, then SIGKILL after `grace_s`) and remove; gone already is fine."""
    try:
        member.container.stop(timeout=grace_s)
        member.container.remove(force=True)
    except docker.errors.NotFound:
        pass
    log.info("removed %s", member.name)


def logs(container: Any, lines: int = 30) -> str:
    try:
        return cast(bytes, container.logs(tail=lines)).decode(errors="replace")
    except docker.errors.DockerException as exc:
        return f"(logs unavailable: {exc})"


def api_key(config: DockerTargetConfig) -> Path:
    """The API key file, created with a random key on first use."""
    path = config.resolved_api_key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path


def _image(client: docker.DockerClient, ref: str) -> Any:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise ContainerStartError(
            f"image {ref} is not in the engine: build it first (infra/image) or load it"
        ) from None


def _image_user(image: Any) -> tuple[int, int]:
    user = str(image.attrs["Config"].get("User") or "0")
    uid, _, gid = user.partition(":")
    if not uid.isdigit():
        raise ContainerStartError(f"image runs as {user!r}: use a numeric uid (USER 10001:10001)")
    return int(uid), int(gid) if gid.isdigit() else int(uid)


def _labels(
    config: DockerTargetConfig, variant: Variant, role: Role, slot: str, digest: str
) -> dict[str, str]:
    return {
        **config.labels,
        TARGET_LABEL: config.name,
        SLOT_LABEL: slot,
        RELEASE_LABEL: variant.release_id,
        MODEL_NAME_LABEL: variant.model_name,
        MODEL_VERSION_LABEL: variant.model_version,
        IMAGE_LABEL: variant.image,
        IMAGE_DIGEST_LABEL: digest,
        DEPLOYED_AS_LABEL: role,
    }


def _environment(
    config: DockerTargetConfig, variant: Variant, role: Role, slot: str
) -> dict[str, str]:
    env = {
        f"{ENV}VARIANT": role,
        f"{ENV}MODEL_VERSION": variant.model_version,
        f"{ENV}SERVED_MODEL_NAME": variant.served_model_name,
        f"{ENV}CPU_KVCACHE_SPACE_GIB": str(config.kv_cache_gib),
    }
    return {**env, **config.threads_env(slot), **variant.env}


def _volumes(config: DockerTargetConfig, slot: str, uid: int, gid: int) -> dict[str, Any]:
    """The key as a read-only file owned by the image user; the shared capture directory."""
    slot_dir = config.resolved_state_dir() / "slots" / slot
    slot_dir.mkdir(parents=True, exist_ok=True)
    slot_dir.chmod(0o700)  # Docker mounts the file as root; nobody else needs to look inside
    secret = slot_dir / "api-key"
    secret.unlink(missing_ok=True)
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(api_key(config).read_text().strip())
    _give(secret, uid, gid, 0o400)
    capture = config.resolved_capture_dir()
    capture.mkdir(parents=True, exist_ok=True)
    _give(capture, uid, gid, 0o755)
    return {
        str(secret): {"bind": SECRET_PATH, "mode": "ro"},
        str(capture): {"bind": CAPTURE_PATH, "mode": "rw"},
    }


def _give(path: Path, uid: int, gid: int, mode: int) -> None:
    """chown to the image user; without root, open the mode up instead."""
    try:
        os.chown(path, uid, gid)
        path.chmod(mode)
    except PermissionError:
        path.chmod(mode | (0o044 if path.is_file() else 0o077))
