"""The Docker target against a real engine, HAProxy and Prometheus (all on loopback).

Most tests use the stand-in server image (seconds per deploy); the zero-downtime test at the
end uses real vLLM containers of the serving image. Every test removes what it started
(containers and network by label, HAProxy and Prometheus by pid file).

    PYTHONPATH=. DOCKER_HOST=unix:///run/canaryflow-docker.sock \
        .venv/bin/python -m pytest tests/e2e/test_docker_target.py -m e2e -q
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from infra.image.build import BuiltImage
from infra.registry import CHAMPION, FakeRegistry
from infra.targets.docker import DockerTarget
from infra.targets.docker_config import DockerTargetConfig
from infra.targets.docker_containers import (
    DEPLOYED_AS_LABEL,
    IMAGE_DIGEST_LABEL,
    MODEL_VERSION_LABEL,
    RELEASE_LABEL,
    TARGET_LABEL,
)
from infra.targets.docker_errors import ContainerStartError, TargetBusyError
from infra.targets.reconcile import reconcile
from tests.fixtures.docker_target import (
    ReleaseLog,
    docker_client,
    make_config,
    running_target,
    standin_image,
    variant,
)
from tests.fixtures.request_stream import Stream, router_overhead, share_within

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    try:
        client = docker_client()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine ({exc}); start it with infra/bootstrap/docker-up.sh")
    return client


@pytest.fixture(scope="module")
def standin(client: docker.DockerClient) -> str:
    return standin_image(client)


@pytest.fixture
def config(tmp_path: Path) -> DockerTargetConfig:
    return make_config(tmp_path / "state")


@pytest.fixture
def target(config: DockerTargetConfig, client: docker.DockerClient) -> Iterator[DockerTarget]:
    with running_target(config, client=client) as target:
        yield target


def api_key(target: DockerTarget) -> str:
    return Path(target.api_key_file).read_text().strip()


def chat(target: DockerTarget, url: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{url or target.router_url}/v1/chat/completions",
        json={"model": "tiny-chat", "messages": [{"role": "user", "content": "1+1"}]},
        headers={"Authorization": f"Bearer {api_key(target)}"},
        timeout=60,
    )


def containers(client: docker.DockerClient, config: DockerTargetConfig) -> list[str]:
    found = client.containers.list(all=True, filters={"label": f"{TARGET_LABEL}={config.name}"})
    return sorted(c.name for c in found)


# -- deploy, weights, promote, rollback with the stand-in ----------------------------------


def test_first_deploy_becomes_the_labelled_stable_behind_the_router(
    target: DockerTarget, client: docker.DockerClient, standin: str, config: DockerTargetConfig
) -> None:
    endpoint = target.deploy(variant(standin, "1", "rel-1"))

    state = target.status()
    assert state.stable is not None
    assert (state.stable.model_version, state.stable.release_id, state.stable.healthy) == (
        "1", "rel-1", True,
    )  # fmt: skip
    assert state.stable.model_name == variant(standin, "1", "rel-1").model_name  # its label
    assert (state.canary, state.canary_percent, state.router_url) == (None, 0, target.router_url)
    resp = chat(target)
    assert resp.status_code == 200
    assert resp.headers["x-canaryflow-variant"] == "stable"
    assert resp.headers["x-canaryflow-model-version"] == "1"
    assert chat(target, endpoint.url).status_code == 200  # direct, bypassing the router

    (container,) = client.containers.list(filters={"name": f"canaryflow-{config.name}-stable"})
    labels = container.labels
    assert (labels[RELEASE_LABEL], labels[MODEL_VERSION_LABEL], labels[DEPLOYED_AS_LABEL]) == (
        "rel-1", "1", "stable",
    )  # fmt: skip
    assert labels[IMAGE_DIGEST_LABEL] == client.images.get(standin).id
    bindings = container.attrs["NetworkSettings"]["Ports"]["8000/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    assert f"canaryflow-{config.name}" in container.attrs["NetworkSettings"]["Networks"]


def test_weights_move_live_with_no_failed_request(target: DockerTarget, standin: str) -> None:
    target.deploy(variant(standin, "1", "rel-1"))
    haproxy_pid = target.router.process.pid()
    with Stream(target.router_url, api_key(target), workers=2, max_requests=900) as stream:
        target.deploy(variant(standin, "2", "rel-2"))
        assert target.status().canary_percent == 0
        for percent in (0, 10, 50, 100):
            target.set_weights(percent)
            since = time.monotonic()
            end = stream.wait_for(100, since)
            window = stream.between(since, end)
            assert share_within(window, "canary", percent), (
                percent,
                Counter(r.variant for r in window),
            )
            assert target.status().canary_percent == percent

    assert [r for r in stream.results if not r.ok] == []
    assert target.router.process.pid() == haproxy_pid  # never restarted


def test_promote_drops_nothing_and_is_idempotent(
    target: DockerTarget, client: docker.DockerClient, standin: str, config: DockerTargetConfig
) -> None:
    target.deploy(variant(standin, "1", "rel-1"))
    target.deploy(variant(standin, "2", "rel-2"))
    target.set_weights(50)
    with Stream(target.router_url, api_key(target), workers=3, max_requests=600) as stream:
        stream.wait_for(30, time.monotonic())
        target.promote()
        after = time.monotonic()
        stream.wait_for(50, after)

    assert [r for r in stream.results if not r.ok] == []
    assert {(r.variant, r.version) for r in stream.between(after, float("inf"))} == {
        ("stable", "2")
    }
    state = target.status()
    assert state.stable is not None
    assert (state.stable.model_version, state.canary, state.canary_percent) == ("2", None, 0)
    assert containers(client, config) == [f"canaryflow-{config.name}-stable"]
    target.promote()  # again: nothing to do, nothing breaks
    assert target.status() == state


def test_rollback_drops_nothing_and_is_idempotent(
    target: DockerTarget, client: docker.DockerClient, standin: str, config: DockerTargetConfig
) -> None:
    target.deploy(variant(standin, "1", "rel-1"))
    target.deploy(variant(standin, "2", "rel-2"))
    target.set_weights(50)
    with Stream(target.router_url, api_key(target), workers=3, max_requests=600) as stream:
        stream.wait_for(30, time.monotonic())
        target.rollback()
        after = time.monotonic()
        stream.wait_for(50, after)

    assert [r for r in stream.results if not r.ok] == []
    assert {r.version for r in stream.between(after, float("inf"))} == {"1"}
    assert containers(client, config) == [f"canaryflow-{config.name}-stable"]
    state = target.status()
    target.rollback()
    assert target.status() == state
    assert state.settled


def test_deploy_is_idempotent_and_refuses_a_second_canary(
    target: DockerTarget, client: docker.DockerClient, standin: str, config: DockerTargetConfig
) -> None:
    target.deploy(variant(standin, "1", "rel-1"))
    first = target.deploy(variant(standin, "2", "rel-2"))
    again = target.deploy(variant(standin, "2", "rel-2"))

    assert first == again
    assert len(containers(client, config)) == 2
    with pytest.raises(TargetBusyError, match="promote or roll it back first"):
        target.deploy(variant(standin, "3", "rel-3"))


def test_a_canary_that_never_gets_healthy_is_removed(
    client: docker.DockerClient, standin: str, tmp_path: Path
) -> None:
    config = make_config(tmp_path / "state", ready_timeout_s=4)
    with running_target(config, client=client) as target:
        target.deploy(variant(standin, "1", "rel-1"))
        with pytest.raises(ContainerStartError, match="not healthy after 4 s"):
            target.deploy(variant(standin, "2", "rel-2", STANDIN_READY_AFTER_S="3600"))

        assert containers(client, config) == [f"canaryflow-{config.name}-stable"]
        assert target.status().settled
        assert chat(target).status_code == 200


def test_status_is_rebuilt_by_a_new_target_object(
    target: DockerTarget, config: DockerTargetConfig, standin: str
) -> None:
    target.deploy(variant(standin, "1", "rel-1"))
    target.deploy(variant(standin, "2", "rel-2"))
    target.set_weights(25)

    assert DockerTarget(config).status() == target.status()
    assert DockerTarget(config).status().canary_percent == 25


def test_metrics_are_labelled_with_variant_and_model_version(
    target: DockerTarget, standin: str
) -> None:
    target.deploy(variant(standin, "1", "rel-1"))
    target.deploy(variant(standin, "2", "rel-2"))
    target.set_weights(50)
    for _ in range(10):
        assert chat(target).status_code == 200
    assert target.metrics is not None

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        backends = target.metrics.query("haproxy_server_http_responses_total")
        served = target.metrics.query("standin_requests_total")
        labels = {(m["metric"].get("variant"), m["metric"].get("model_version")) for m in served}
        ha = {(m["metric"].get("variant"), m["metric"].get("model_version")) for m in backends}
        if {("stable", "1"), ("canary", "2")} <= labels & ha:
            break
        time.sleep(1)
    assert {("stable", "1"), ("canary", "2")} <= labels, served
    assert {("stable", "1"), ("canary", "2")} <= ha, backends


# -- reconcile after a killed process ------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "pause_at", "decided", "action", "serving"),
    [
        (["weights:50"], "weights:50", False, "rolled_back", "1"),
        (["weights:50", "promote"], "promote:weights", True, "promoted", "2"),
        (["weights:50", "promote"], "promote:stable-retiring", True, "promoted", "2"),
        (["weights:50", "promote"], "promote:stable-retiring", False, "rolled_back", "1"),
        (["weights:50", "rollback"], "rollback:canary-retiring", False, "none", "1"),
        ([], "deploy:canary:started", False, "none", "1"),
    ],
)
def test_reconcile_after_a_killed_release(
    client: docker.DockerClient,
    standin: str,
    tmp_path: Path,
    actions: list[str],
    pause_at: str,
    decided: bool,
    action: str,
    serving: str,
) -> None:
    config = make_config(tmp_path / "state")
    registry = FakeRegistry()
    for version in ("1", "2", "3"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "config.json").write_text(version)
        registry.register("tiny-chat", tmp_path / version)
    registry.set_alias("tiny-chat", CHAMPION, "1")
    with running_target(config, client=client) as target:
        target.deploy(variant(standin, "1", "rel-1"))
        with Stream(target.router_url, api_key(target), workers=2, max_requests=2000) as stream:
            _kill_while_paused(config, tmp_path, pause_at, [f"deploy:{standin}:2:rel-2", *actions])
            if decided:
                registry.set_alias("tiny-chat", CHAMPION, "2")

            result = reconcile(DockerTarget(config, client=client), registry, "tiny-chat")
            after = time.monotonic()
            stream.wait_for(20, after)

        assert (result.action, result.after.settled) == (action, True), result.reason
        assert result.after.stable is not None
        assert result.after.stable.model_version == serving
        assert registry.get_by_alias("tiny-chat", CHAMPION).version == serving
        print(f"killed at {pause_at}: {result.action}, {len(stream.results)} requests sent")
        assert [r for r in stream.results if not r.ok] == []
        assert {r.version for r in stream.between(after, float("inf"))} == {serving}
        # whatever the crash left over is cleared by the next release's deploy
        target.deploy(variant(standin, "3", "rel-3"))
        assert containers(client, config) == sorted(
            f"canaryflow-{config.name}-{role}" for role in ("canary", "stable")
        )


def _kill_while_paused(
    config: DockerTargetConfig, tmp_path: Path, pause_at: str, actions: list[str]
) -> None:
    """Run `actions` in a child process, SIGKILL it when it reaches `pause_at`."""
    cfg = tmp_path / "config.json"
    cfg.write_text(config.model_dump_json())
    cmd = [sys.executable, "-m", "tests.fixtures.docker_target", str(cfg), "--pause-at", pause_at]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [*cmd, *actions], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, cwd=ROOT,
    )  # fmt: skip
    seen = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            seen.append(line.rstrip())
            if line.startswith("PAUSED"):
                break
        else:
            pytest.fail("child ended before pausing:\n" + "\n".join(seen[-30:]))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)


# -- zero downtime with real vLLM containers -----------------------------------------------


def test_zero_downtime_release_with_vllm(
    client: docker.DockerClient, tmp_path: Path, serving_image: BuiltImage
) -> None:
    """Release v2 (0→10→50→100 %, promote) and v3 (50 %, rollback) under a request stream."""
    image = os.environ.get("CANARYFLOW_SERVING_IMAGE") or serving_image.tag
    config = make_config(
        tmp_path / "state", cpusets=("0", "1"), ready_timeout_s=900, drain_timeout_s=120,
        scrape_interval_s=5,
    )  # fmt: skip
    log = ReleaseLog(image)
    with running_target(config, client=client) as target:
        log.timed(
            "deploy stable v1 (first release)", None, target.deploy, variant(image, "1", "r1")
        )
        # Bounded by time, not count: at 3 req/s 1200 requests lasted 400 s, and on a busy
        # machine two canary start-ups alone take longer (the stream ended mid-test).
        with Stream(target.router_url, api_key(target), rate_per_s=3, max_requests=20_000,
                    max_seconds=2400) as stream:  # fmt: skip
            log.phase(stream, 0, {"1"})
            log.timed("deploy canary v2 at 0%", stream, target.deploy, variant(image, "2", "r2"))
            log.phase(stream, 0, {"1"})
            for percent in (10, 50, 100):
                log.timed(f"weights -> {percent}%", stream, target.set_weights, percent)
                log.phase(stream, percent, {"1", "2"} if percent < 100 else {"2"})
            log.timed("promote v2", stream, target.promote, burst=True)
            log.phase(stream, 0, {"2"})
            log.timed("deploy canary v3 at 0%", stream, target.deploy, variant(image, "3", "r3"))
            log.timed("weights -> 50%", stream, target.set_weights, 50)
            log.phase(stream, 50, {"2", "3"})
            log.timed("rollback v3", stream, target.rollback, burst=True)
            log.phase(stream, 0, {"2"})
        log.report["sent_total"] = len(stream.results)
        log.report["failed_total"] = sum(not r.ok for r in stream.results)
        log.report["failures"] = [r.error for r in stream.results if not r.ok][:10]
        log.report["overhead"] = router_overhead(target, api_key(target))
    out = Path(os.environ.get("CANARYFLOW_E2E_REPORT", tmp_path / "zero-downtime.json"))
    out.write_text(json.dumps(log.report, indent=2))
    print(json.dumps(log.report, indent=2))
    assert log.report["failed_total"] == 0, log.report
    assert all(p["ok"] for p in log.report["phases"]), log.report["phases"]
