"""Router security against the real HAProxy binary: keys, per-key rate limit, body limit.

The first tests put HAProxy (configured by RouterSecurity) in front of a loopback stdlib
server that counts what reaches it, so they can prove a refused request never got through;
the last one deploys the stand-in image on the Docker target to check the settings plumbing
end to end. Each test prints what it sent and the statuses it saw (`-s` to read them).

    PYTHONPATH=. DOCKER_HOST=unix:///run/canaryflow-docker.sock \
        .venv/bin/python -m pytest tests/e2e/test_router_security.py -m e2e -q -s
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from infra.router.haproxy import DEFAULT_BINARY, HAProxy
from infra.router.haproxy_config import RouterLayout, SlotState
from infra.router.haproxy_security import RouterSecurity
from infra.targets.docker_config import DockerTargetConfig
from tests.fixtures.docker_target import (
    free_ports,
    make_config,
    running_target,
    standin_image,
    variant,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not DEFAULT_BINARY.is_file(), reason="HAProxy not installed"),
]
KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-9876543210"}
CHAT = "/v1/chat/completions"


class Upstream:
    """A loopback server standing in for the slots: /health, /metrics, and any POST/GET."""

    def __init__(self, port: int) -> None:
        self.reached: Counter[str] = Counter()
        self.body_bytes: list[int] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                n = len(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if self.path != "/health":
                    upstream.reached[self.path] += 1
                    upstream.body_bytes.append(n)
                data = json.dumps({"path": self.path, "bytes": n}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        class Server(ThreadingHTTPServer):
            def handle_error(self, *args: object) -> None:
                pass  # health checks reset their connections

        self.server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def secured_router(tmp_path: Path, **security: Any) -> Iterator[tuple[HAProxy, Upstream]]:
    """HAProxy with keys alice and bob (plus `security`) in front of one Upstream in slot a."""
    files = []
    for name, key in KEYS.items():
        (path := tmp_path / "keys" / name).parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key)
        files.append(path)
    port, metrics, a, b = free_ports(4)
    layout = RouterLayout(
        tmp_path / "haproxy", port, metrics, {"a": a, "b": b}, check_interval_ms=200,
        security=RouterSecurity(api_key_files=tuple(files), **security),
    )  # fmt: skip
    upstream = Upstream(a)
    router = HAProxy(layout)
    try:
        router.start({"a": SlotState(100, True, "stable"), "b": SlotState()})
        router.wait_up("a", 10)
        yield router, upstream
    finally:
        router.stop()
        upstream.close()


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def error_code(resp: httpx.Response) -> str:
    assert resp.headers["content-type"] == "application/json", resp.headers
    return str(resp.json()["error"]["code"])


def report(what: str, sent: int, statuses: Counter[int] | list[int]) -> None:
    counts = statuses if isinstance(statuses, Counter) else Counter(statuses)
    print(f"\n{what}: sent {sent}, observed {dict(sorted(counts.items()))}")


# -- HAProxy in front of a loopback server -------------------------------------------------


def test_keys_are_required_everywhere_but_health_and_metrics(tmp_path: Path) -> None:
    two_keys = [("Authorization", "Bearer nope"), ("Authorization", f"Bearer {KEYS['alice']}")]
    with secured_router(tmp_path) as (router, upstream), httpx.Client(base_url=router.url) as c:
        refused = {
            "no key": c.post(CHAT, json={}),
            "wrong key": c.post(CHAT, json={}, headers={"Authorization": "Bearer nope"}),
            "key without scheme": c.post(CHAT, json={}, headers={"Authorization": KEYS["bob"]}),
            "two headers": c.post(CHAT, json={}, headers=two_keys),
            "inference outside /v1": c.post("/invocations", json={}),
            "encoded /v1": c.get("/%761/models"),
        }
        allowed = {
            "alice": c.post(CHAT, json={}, headers=auth("alice")),
            "bob": c.post(CHAT, json={}, headers=auth("bob")),
            "GET /v1/models": c.get("/v1/models", headers=auth("alice")),
            "/health, no key": c.get("/health"),
            "/metrics, no key": c.get("/metrics"),
            "/version, no key": c.get("/version"),
        }

    for name, resp in {**refused, **allowed}.items():
        print(f"\n{name}: {resp.status_code} {resp.text[:90]}")
    report("refused cases", len(refused), [r.status_code for r in refused.values()])
    report("allowed cases", len(allowed), [r.status_code for r in allowed.values()])
    print(f"upstream reached: {dict(upstream.reached)}")
    for resp in refused.values():
        assert resp.status_code == 401
        assert error_code(resp) == "invalid_api_key"
        assert resp.headers["www-authenticate"] == "Bearer"
        assert "API key" in resp.json()["error"]["message"]
    assert all(r.status_code == 200 for r in allowed.values())
    assert upstream.reached == Counter({CHAT: 2, "/v1/models": 1, "/metrics": 1, "/version": 1})


def test_over_the_rate_gets_429_with_retry_after_and_other_keys_are_unaffected(
    tmp_path: Path,
) -> None:
    with (
        secured_router(tmp_path, rate_limit_per_s=5) as (router, upstream),
        httpx.Client(base_url=router.url) as c,
    ):
        start = time.monotonic()
        burst = [c.post(CHAT, json={}, headers=auth("alice")) for _ in range(30)]
        elapsed = time.monotonic() - start
        bob = [c.post(CHAT, json={}, headers=auth("bob")).status_code for _ in range(5)]
        health = [c.get("/health").status_code for _ in range(10)]
        time.sleep(2.2)  # Retry-After is 1 s; 2 windows let the estimate fall to zero
        after = c.post(CHAT, json={}, headers=auth("alice")).status_code

    statuses = [r.status_code for r in burst]
    report(f"alice burst in {elapsed:.2f} s (limit 5/s)", 30, statuses)
    report("bob right after", 5, bob)
    report("/health meanwhile", 10, health)
    print(f"alice after waiting: {after}; upstream reached {dict(upstream.reached)}")
    assert statuses[:5] == [200] * 5  # a fresh key gets its whole budget
    ok = statuses.count(200)
    assert ok <= 5 * (elapsed + 1), f"{ok} passed in {elapsed:.2f} s at 5/s"
    refusal = next(r for r in burst if r.status_code == 429)
    assert refusal.headers["retry-after"] == "1"
    assert error_code(refusal) == "rate_limit_exceeded"
    assert set(statuses) == {200, 429}
    assert bob == [200] * 5
    assert health == [200] * 10
    assert after == 200
    assert upstream.reached[CHAT] == ok + 5 + 1  # refused requests never reached a server


def test_bodies_over_the_limit_get_413_and_chunked_bodies_411(tmp_path: Path) -> None:
    limit = 64 * 1024
    with (
        secured_router(tmp_path, max_body_bytes=limit) as (router, upstream),
        httpx.Client(base_url=router.url, timeout=30) as c,
    ):
        sent = {
            "at the limit": c.post(CHAT, content=b"x" * limit, headers=auth("alice")),
            "one byte over": c.post(CHAT, content=b"x" * (limit + 1), headers=auth("alice")),
            "2 MiB": c.post(CHAT, content=b"x" * (2 << 20), headers=auth("alice")),
            "chunked, 10 bytes": c.post(CHAT, content=iter([b"x" * 10]), headers=auth("alice")),
            "no body": c.get("/v1/models", headers=auth("alice")),
        }
        raw = raw_chunked(router, auth("bob")["Authorization"])

    for name, resp in sent.items():
        print(f"\n{name}: {resp.status_code} {resp.text[:110]}")
    print(f"raw chunked request over a socket: {raw.splitlines()[0] if raw else raw!r}")
    report("body cases", len(sent) + 1, [r.status_code for r in sent.values()])
    print(f"upstream reached: {dict(upstream.reached)}, body sizes {upstream.body_bytes}")
    assert sent["at the limit"].status_code == 200
    assert sent["at the limit"].json()["bytes"] == limit
    for name in ("one byte over", "2 MiB"):
        assert sent[name].status_code == 413, name
        assert error_code(sent[name]) == "request_too_large"
    assert sent["chunked, 10 bytes"].status_code == 411
    assert error_code(sent["chunked, 10 bytes"]) == "length_required"
    assert raw.startswith("HTTP/1.1 411")
    assert sent["no body"].status_code == 200
    assert upstream.body_bytes == [limit, 0]


def raw_chunked(router: HAProxy, authorization: str) -> str:
    """A chunked POST written by hand (no client library deciding the framing)."""
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection((router.layout.host, router.layout.port), timeout=10) as s:
        s.sendall(head.encode() + b"2\r\n{}\r\n0\r\n\r\n")
        return s.recv(65536).decode(errors="replace")


# -- the Docker target's settings, end to end ----------------------------------------------


def test_docker_target_router_enforces_its_settings(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    config: DockerTargetConfig = make_config(
        tmp_path / "state", prometheus=False, router_rate_limit_per_s=5,
        router_max_body_bytes=4096,
    )  # fmt: skip
    with running_target(config, client=docker_client) as target:
        target.deploy(variant(standin_image(docker_client), "1", "rel-1"))
        key = Path(target.api_key_file).read_text().strip()
        good = {"Authorization": f"Bearer {key}"}
        body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "1+1"}]}
        with httpx.Client(base_url=target.router_url, timeout=30) as c:
            checks = {
                "no key": c.post(CHAT, json=body),
                "wrong key": c.post(CHAT, json=body, headers={"Authorization": "Bearer x"}),
                "right key": c.post(CHAT, json=body, headers=good),
                "8 KiB body": c.post(CHAT, content=b"x" * 8192, headers=good),
                "chunked": c.post(CHAT, content=iter([b"{}"]), headers=good),
                "/health": c.get("/health"),
                "/metrics": c.get("/metrics"),
            }
            time.sleep(2.2)  # the three keyed requests above count towards the limit
            burst = [c.post(CHAT, json=body, headers=good) for _ in range(20)]
        layout = config.router_layout()
        cfg, digests = layout.config.read_text(), layout.api_key_digests

    for name, resp in checks.items():
        print(f"\n{name}: {resp.status_code} {resp.text[:100]}")
    report("burst of 20 with the target's key (limit 5/s)", 20, [r.status_code for r in burst])
    want = {"no key": 401, "wrong key": 401, "right key": 200, "8 KiB body": 413,
            "chunked": 411, "/health": 200, "/metrics": 200}  # fmt: skip
    assert {name: r.status_code for name, r in checks.items()} == want
    assert error_code(checks["no key"]) == "invalid_api_key"  # the router's, not the server's
    assert checks["right key"].headers["x-canaryflow-variant"] == "stable"
    statuses = [r.status_code for r in burst]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses
    assert next(r for r in burst if r.status_code == 429).headers["retry-after"] == "1"
    assert key not in cfg
    assert key not in digests.read_text()
    assert digests.stat().st_mode & 0o777 == 0o600
