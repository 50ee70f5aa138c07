"""Two models on one machine, each on its own Docker target (real engine, real HAProxy): both
routers serve their own model, a target on the other's ports is refused before it starts
anything, and one supervisor, started for the first target, restarts the second's router."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import docker
import httpx
import pytest

from infra.errors import SpecError
from infra.targets.base import Variant
from infra.targets.docker_config import DockerTargetConfig
from infra.targets.docker_containers import TARGET_LABEL
from tests.e2e.test_supervisor import supervising
from tests.fixtures.docker_target import make_config, running_target, standin_image

pytestmark = pytest.mark.e2e


def of(image: str, model: str, version: str) -> Variant:
    return Variant(role="stable", image=image, model_name=model, model_version=version,
                   release_id=f"{model}-r{version}")  # fmt: skip


def answer(config: DockerTargetConfig, model: str) -> httpx.Response:
    key = config.resolved_api_key_file().read_text().strip()
    body = {"model": model, "messages": [{"role": "user", "content": "1+1"}]}
    url = f"http://127.0.0.1:{config.router_port}/v1/chat/completions"
    return httpx.post(url, headers={"Authorization": f"Bearer {key}"}, json=body, timeout=10)


def test_two_models_two_targets_one_supervisor(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    client = docker_client  # the session's engine (tests/e2e/conftest.py), pinged
    image = standin_image(client)
    targets = tmp_path / "state" / "targets"
    first = make_config(targets / "first")
    second = make_config(targets / "second")
    with running_target(first) as a, running_target(second) as b:
        a.deploy(of(image, "support-bot", "1"))
        b.deploy(of(image, "extract-json", "7"))
        assert answer(first, "support-bot").status_code == 200
        assert answer(second, "extract-json").status_code == 200
        assert a.status().stable.model_name == "support-bot"  # type: ignore[union-attr]
        assert b.status().stable.model_name == "extract-json"  # type: ignore[union-attr]

        squatter = make_config(targets / "third", router_port=second.router_port)
        with running_target(squatter) as c, pytest.raises(SpecError, match="already uses"):
            c.deploy(of(image, "third-model", "1"))
        labels = {"label": f"{TARGET_LABEL}={squatter.name}"}
        assert client.containers.list(all=True, filters=labels) == []  # nothing started
        assert answer(second, "extract-json").status_code == 200  # the other one unharmed

        with supervising(first):
            time.sleep(3)
            pid = b.router.process.pid()
            assert pid is not None
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            while not b.router.running() and time.monotonic() < killed + 60:
                time.sleep(0.2)
            back = time.monotonic() - killed
        assert b.router.running(), "the supervisor of the first target left the second's down"
        assert answer(second, "extract-json").status_code == 200
        print(f"second target's HAProxy restarted {back:.1f} s after SIGKILL")
