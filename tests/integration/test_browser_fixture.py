"""The headless-browser fixture the record e2e test relies on, on a page served here: it
must tell a picture that loads from one that does not, find links, and fail with what
the page showed when the expected text never comes."""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.browser import chromium, look

# a 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PAGE = """<html><body><h1 id="h"></h1>
<img src="/ok.png"><img src="/missing.png"><a href="/elsewhere">more</a>
<script>setTimeout(() => document.getElementById("h").textContent = "Verdict: promoted", 300)
</script></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, kind = {"/": (PAGE.encode(), "text/html"), "/ok.png": (PNG, "image/png")}.get(
            self.path, (b"no such thing", "text/plain")
        )
        self.send_response(200 if self.path in {"/", "/ok.png"} else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        with contextlib.suppress(Exception):
            server.server_close()


def test_a_page_is_seen_with_its_pictures_and_links(site: str, tmp_path: Path) -> None:
    with chromium() as browser:
        seen = look(browser, f"{site}/", "Verdict: promoted", tmp_path / "page.png")
    assert "Verdict: promoted" in seen.text  # text a script put there after load
    assert [src.removeprefix(site) for src, _ in seen.images] == ["/ok.png", "/missing.png"]
    assert seen.broken_images == [f"{site}/missing.png"]
    assert seen.links == [f"{site}/elsewhere"]
    assert seen.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_page_without_the_expected_text_fails_saying_what_it_showed(
    site: str, tmp_path: Path
) -> None:
    with chromium() as browser, pytest.raises(pytest.fail.Exception) as failed:
        look(browser, f"{site}/", "Verdict: rolled_back", tmp_path / "page.png", timeout_s=3)
    assert "Verdict: promoted" in str(failed.value)  # what the page did say
    assert str(tmp_path / "page.png") in str(failed.value)
