"""PrefectApi tries again what the server marks as passing (429/502/503), nothing else."""

from __future__ import annotations

import json
import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.prefect_api import RETRIES, PrefectApi


class _Server:
    """Loopback HTTP: answers the scripted statuses in order, then 200 with a JSON body."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.seen = list(statuses), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.seen.append((self.command, self.path, self.rfile.read(length)))
                code = outer.statuses.pop(0) if outer.statuses else 200
                body = json.dumps({"ok": code == 200}).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                if code == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PATCH = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"


@pytest.fixture
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    monkeypatch.setattr("infra.prefect_api.time.sleep", lambda s: None)
    srv = _Server(request.param)
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()


@pytest.mark.parametrize("server", [[503, 503], [502], [429, 503]], indirect=True)
def test_a_passing_refusal_is_tried_again_with_the_same_body(server: _Server) -> None:
    api = PrefectApi(server.url)
    assert api.patch("/deployments/d1", {"parameters": {"spec": {"x": 1}}}) == {"ok": True}
    assert [s[0] for s in server.seen] == ["PATCH"] * len(server.seen)
    assert {s[2] for s in server.seen} == {b'{"parameters": {"spec": {"x": 1}}}'}
    assert len(server.seen) >= 2


@pytest.mark.parametrize("server", [[503]], indirect=True)
def test_a_get_is_tried_again_too(server: _Server) -> None:
    assert PrefectApi(server.url).get("/flow_runs/r1") == {"ok": True}
    assert len(server.seen) == 2


@pytest.mark.parametrize("server", [[500], [404], [422]], indirect=True)
def test_a_real_refusal_is_raised_at_once(server: _Server) -> None:
    with pytest.raises(urllib.error.HTTPError):
        PrefectApi(server.url).post("/flow_runs/filter", {})
    assert len(server.seen) == 1


@pytest.mark.parametrize("server", [[503] * (RETRIES + 1)], indirect=True)
def test_a_server_that_stays_unavailable_is_raised_after_the_retries(server: _Server) -> None:
    with pytest.raises(urllib.error.HTTPError, match="503"):
        PrefectApi(server.url).get("/health")
    assert len(server.seen) == RETRIES + 1
