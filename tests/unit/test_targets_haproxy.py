"""The router: config rendering, command ordering, and a real HAProxy over loopback backends.

The live tests run /usr/sbin/haproxy against two in-process HTTP servers (no Docker); they
take about a second each and are skipped where HAProxy is not installed.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from infra.router.haproxy import DEFAULT_BINARY, HAProxy, plan
from infra.router.haproxy_config import (
    SLOTS,
    RouterLayout,
    SlotState,
    empty_slots,
    load_slots,
    render_config,
    render_map,
    write_files,
)
from infra.router.process import ManagedProcess
from tests.fixtures.docker_target import free_ports

needs_haproxy = pytest.mark.skipif(not DEFAULT_BINARY.is_file(), reason="HAProxy not installed")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # HAProxy's health checks reset their connections: not an error


class Backend:
    """A loopback HTTP server standing in for one container: /health and any GET path."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.healthy, self.delay_s = name, True, 0.0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                ok = backend.healthy or self.path != "/health"
                if self.path != "/health":
                    time.sleep(backend.delay_s)
                body = backend.name.encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Canaryflow-Variant", f"container-{backend.name}")
                self.end_headers()
                self.wfile.write(body)

        self.server = _QuietServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def layout(tmp_path: Path, sticky: str | None = None) -> RouterLayout:
    port, metrics, a, b = free_ports(4)
    return RouterLayout(
        tmp_path / "haproxy", port, metrics, {"a": a, "b": b},
        sticky_header=sticky, check_interval_ms=200,
    )  # fmt: skip


def two(stable: int, canary: int) -> dict[str, SlotState]:
    return {"a": SlotState(stable, True, "stable"), "b": SlotState(canary, True, "canary")}


@pytest.fixture
def backends(request: pytest.FixtureRequest) -> Iterator[tuple[RouterLayout, dict[str, Backend]]]:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    lay = layout(tmp_path, getattr(request, "param", None))
    servers = {slot: Backend(slot, lay.slot_ports[slot]) for slot in SLOTS}
    yield lay, servers
    for server in servers.values():
        server.close()


@pytest.fixture
def router(backends: tuple[RouterLayout, dict[str, Backend]]) -> Iterator[HAProxy]:
    haproxy = HAProxy(backends[0])
    haproxy.start(two(100, 0))
    for slot in SLOTS:
        haproxy.wait_up(slot, 10)
    yield haproxy
    haproxy.stop()


def hits(
    router: HAProxy, n: int, headers: dict[str, str] | None = None
) -> Counter[tuple[str, str]]:
    """(answering backend, X-Canaryflow-Variant) of `n` requests through the router."""
    with httpx.Client(base_url=router.url, timeout=5) as http:
        answers = [http.get("/x", headers=headers) for _ in range(n)]
    assert all(r.status_code == 200 for r in answers), [r.status_code for r in answers]
    return Counter((r.text, r.headers["x-canaryflow-variant"]) for r in answers)


# -- rendering and planning (no process) ---------------------------------------------------


@needs_haproxy
@pytest.mark.parametrize("sticky", [None, "X-Canaryflow-Key"])
def test_rendered_config_is_valid_haproxy(tmp_path: Path, sticky: str | None) -> None:
    lay = layout(tmp_path, sticky)
    write_files(lay, {"a": SlotState(90, True, "stable"), "b": SlotState()})

    check = subprocess.run(
        [str(DEFAULT_BINARY), "-c", "-f", str(lay.config)], capture_output=True, text=True
    )

    assert check.returncode == 0, check.stderr
    text = lay.config.read_text()
    assert "server a 127.0.0.1" in text
    assert "weight 0 disabled" in text
    assert ("hash-type consistent" in text) == bool(sticky)
    # streamed responses are forwarded as they come (tests/e2e/test_router_streaming.py)
    assert "    option http-no-delay\n" in text


def test_map_names_every_slot() -> None:
    assert render_map(empty_slots()) == "a none\nb none\n"


def test_paths_with_spaces_are_refused(tmp_path: Path) -> None:
    lay = replace(layout(tmp_path), state_dir=tmp_path / "with space")
    with pytest.raises(Exception, match="spaces"):
        render_config(lay, empty_slots())


def test_slots_round_trip_and_default_to_empty(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    assert load_slots(lay) == empty_slots()
    write_files(lay, two(70, 30))
    assert load_slots(lay) == two(70, 30)


def test_long_state_paths_get_a_short_socket(tmp_path: Path) -> None:
    lay = replace(layout(tmp_path), state_dir=tmp_path / ("x" * 120))
    assert len(str(lay.socket)) < 100


def test_plan_enables_then_raises_then_lowers_then_disables(tmp_path: Path) -> None:
    desired = {"a": SlotState(0, False, "none"), "b": SlotState(100, True, "stable")}

    cmds = plan({"a": 100, "b": 0}, desired, tmp_path / "roles.map")

    assert cmds[:2] == [
        f"set map {tmp_path}/roles.map a none",
        f"set map {tmp_path}/roles.map b stable",
    ]
    assert cmds[2:] == [
        "set server be_main/b state ready",
        "set server be_main/b weight 100",
        "set server be_main/a weight 0",
        "set server be_main/a state maint",
    ]


# -- a live HAProxy ------------------------------------------------------------------------


@needs_haproxy
def test_weights_split_traffic_and_the_header_names_the_role(router: HAProxy) -> None:
    assert hits(router, 20) == Counter({("a", "stable"): 20})

    router.apply(two(90, 10))
    assert hits(router, 100) == Counter({("a", "stable"): 90, ("b", "canary"): 10})

    router.apply(two(50, 50))
    assert hits(router, 100) == Counter({("a", "stable"): 50, ("b", "canary"): 50})


@needs_haproxy
def test_changes_never_restart_or_reload_haproxy(router: HAProxy) -> None:
    pid = router.process.pid()
    for stable, canary in [(90, 10), (50, 50), (0, 100), (100, 0)]:
        router.apply(two(stable, canary))
    router.apply({"a": SlotState(100, True, "canary"), "b": SlotState(0, False)})

    assert router.process.pid() == pid
    assert "reload" not in router.layout.logfile.read_text(errors="replace").lower()
    assert router.weights() == {"a": 100, "b": 0}


@needs_haproxy
def test_roles_move_between_slots_without_touching_servers(router: HAProxy) -> None:
    router.apply({"a": SlotState(0, True, "retiring"), "b": SlotState(100, True, "stable")})
    assert hits(router, 10) == Counter({("b", "stable"): 10})


@needs_haproxy
def test_a_slot_in_maintenance_gets_nothing(router: HAProxy) -> None:
    router.apply({"a": SlotState(100, True, "stable"), "b": SlotState(100, False, "none")})
    assert hits(router, 10) == Counter({("a", "stable"): 10})
    assert router.servers()["b"].status.startswith("MAINT")


@needs_haproxy
def test_a_failing_health_check_takes_the_slot_out(
    router: HAProxy, backends: tuple[RouterLayout, dict[str, Backend]]
) -> None:
    router.apply(two(50, 50))
    backends[1]["b"].healthy = False
    deadline = time.monotonic() + 5
    while router.servers()["b"].status != "DOWN" and time.monotonic() < deadline:
        time.sleep(0.05)

    assert hits(router, 20) == Counter({("a", "stable"): 20})


@needs_haproxy
def test_a_dead_full_weight_canary_falls_back_to_the_stable(
    router: HAProxy, backends: tuple[RouterLayout, dict[str, Backend]]
) -> None:
    router.apply(two(0, 100))
    backends[1]["b"].close()
    deadline = time.monotonic() + 5
    while router.servers()["b"].status != "DOWN" and time.monotonic() < deadline:
        time.sleep(0.05)

    assert hits(router, 10) == Counter({("a", "stable"): 10})


@needs_haproxy
def test_wait_idle_waits_for_requests_in_flight(
    router: HAProxy, backends: tuple[RouterLayout, dict[str, Backend]]
) -> None:
    backends[1]["a"].delay_s = 1.0
    slow = threading.Thread(target=lambda: httpx.get(f"{router.url}/slow", timeout=5))
    slow.start()
    deadline = time.monotonic() + 5  # a busy machine can take a second to send it
    while router.servers()["a"].sessions == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    router.apply({"a": SlotState(0, False), "b": SlotState(100, True, "stable")})

    assert router.servers()["a"].sessions == 1
    assert not router.wait_idle("a", 0.1)
    assert router.wait_idle("a", 5)
    slow.join()


@needs_haproxy
@pytest.mark.parametrize("backends", ["X-Canaryflow-Key"], indirect=True)
def test_sticky_header_keeps_a_key_on_one_slot(router: HAProxy) -> None:
    router.apply(two(50, 50))
    for key in ("alice", "bob", "carol"):
        assert len(hits(router, 8, {"X-Canaryflow-Key": key})) == 1

    with httpx.Client(base_url=router.url, timeout=5) as http:
        keys = [f"user-{i}" for i in range(200)]
        spread = Counter(
            http.get("/x", headers={"X-Canaryflow-Key": k}).headers["x-canaryflow-variant"]
            for k in keys
        )
    assert 60 <= spread["canary"] <= 140, spread


@needs_haproxy
def test_a_restarted_haproxy_keeps_the_last_weights(router: HAProxy) -> None:
    router.apply(two(75, 25))
    router.stop()
    assert not router.running()

    router.start(load_slots(router.layout))
    for slot in SLOTS:
        router.wait_up(slot, 10)
    assert router.weights() == {"a": 75, "b": 25}


def test_managed_process_ignores_a_pid_that_is_not_ours(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    proc = ManagedProcess(
        "sleeper", ("sleep", "30", marker), tmp_path / "p.pid", tmp_path / "p.log", marker
    )
    foreign = subprocess.Popen(["sleep", "30"])
    try:
        proc.pidfile.write_text(str(foreign.pid))
        assert proc.pid() is None  # alive, but not ours: never signalled
        proc.stop()
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()


def test_managed_process_starts_finds_and_stops(tmp_path: Path) -> None:
    marker = str(tmp_path / "cfg")
    script = f"import time, sys; time.sleep(30)  # {marker}"
    proc = ManagedProcess(
        "py", ("python3", "-c", script), tmp_path / "p.pid", tmp_path / "p.log", marker
    )

    pid = proc.start()
    assert proc.pid() == pid
    assert proc.start() == pid  # already running: no second process

    proc.stop(timeout_s=5)
    assert proc.pid() is None
