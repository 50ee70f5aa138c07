"""The router's security rules as rendered: keys as digests, limits, JSON errors, settings.

No HAProxy process runs here (tests/e2e/test_router_security.py does that); `haproxy -c`
checks the rendered file where HAProxy is installed.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.router.errors import RouterError
from infra.router.haproxy import DEFAULT_BINARY
from infra.router.haproxy_config import RouterLayout, SlotState, render_config, write_files
from infra.router.haproxy_security import (
    OPEN_PATHS,
    RouterSecurity,
    key_digest,
    render_digests,
    render_rules,
    write_digests,
)
from infra.targets.docker_config import DockerTargetConfig

KEY = "s3cr3t-key_ABC"
needs_haproxy = pytest.mark.skipif(not DEFAULT_BINARY.is_file(), reason="HAProxy not installed")


def key_file(tmp_path: Path, name: str = "api-key", key: str = KEY) -> Path:
    path = tmp_path / "secrets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    return path


def secured(tmp_path: Path, **fields: object) -> RouterLayout:
    values: dict[str, object] = {
        "api_key_files": (key_file(tmp_path),), "rate_limit_per_s": 20,
        "rate_limit_window_s": 2, "max_body_bytes": 4096,
    }  # fmt: skip
    security = RouterSecurity(**{**values, **fields})  # type: ignore[arg-type]
    return RouterLayout(tmp_path / "haproxy", 9000, 9001, {"a": 9002, "b": 9003}, security=security)


def rule(text: str, status: int) -> str:
    (line,) = [ln for ln in text.splitlines() if f"return status {status} " in ln]
    return line


def error_of(line: str) -> dict[str, object]:
    """The `error` object of the JSON body a `return` rule answers with."""
    match = re.search(r"string '([^']*)'", line)
    assert match, line
    return dict(json.loads(match.group(1))["error"])


def rule_words(text: str) -> list[str]:
    """`status NNN` and `stick-table` words of the rendered frontend, to test absence."""
    return re.findall(r"status \d{3}|stick-table", text)


def test_nothing_is_rendered_when_security_is_off(tmp_path: Path) -> None:
    layout = RouterLayout(tmp_path, 9000, 9001, {"a": 9002, "b": 9003})

    assert render_rules(layout.security, layout.api_key_digests) == []
    assert "cf_" not in render_config(layout, {"a": SlotState(), "b": SlotState()})


def test_keys_are_checked_as_header_digests_and_open_paths_stay_open(tmp_path: Path) -> None:
    layout = secured(tmp_path, rate_limit_per_s=None, max_body_bytes=None)
    text = render_config(layout, {"a": SlotState(), "b": SlotState()})

    assert f"acl cf_open path {' '.join(OPEN_PATHS)}" in text
    assert {"/health", "/metrics"} <= set(OPEN_PATHS)
    assert f"req.fhdr(authorization),sha2(256),hex,lower -m str -f {layout.api_key_digests}" in text
    line = rule(text, 401)
    assert line.endswith("if !cf_open !cf_one_key || !cf_open !cf_key_ok")
    assert "hdr WWW-Authenticate Bearer" in line
    assert error_of(line) == {
        "message": "Missing or invalid API key: send one header Authorization: Bearer KEY.",
        "type": "invalid_request_error", "param": None, "code": "invalid_api_key",
    }  # fmt: skip
    assert not {"status 429", "status 413", "stick-table"} & set(rule_words(text))
    assert KEY not in text


def test_rate_limit_counts_per_key_digest_over_the_window(tmp_path: Path) -> None:
    text = render_config(secured(tmp_path), {"a": SlotState(), "b": SlotState()})

    assert "stick-table type binary len 32 size 1k expire 4s store http_req_rate(2s)" in text
    assert "http-request track-sc0 req.fhdr(authorization),sha2(256) if !cf_open" in text
    line = rule(text, 429)
    assert line.endswith("hdr Retry-After 2 if !cf_open { sc_http_req_rate(0) gt 40 }")
    assert error_of(line)["code"] == "rate_limit_exceeded"
    # Order matters: unknown keys are refused before they could be tracked or measured.
    assert text.index("status 401") < text.index("track-sc0") < text.index("status 429")
    assert text.index("status 429") < text.index("status 411") < text.index("status 413")


def test_body_limit_refuses_large_and_chunked_bodies(tmp_path: Path) -> None:
    text = render_config(secured(tmp_path), {"a": SlotState(), "b": SlotState()})

    assert rule(text, 413).endswith("if !cf_open { req.body_size gt 4096 }")
    assert rule(text, 411).endswith("if !cf_open { req.hdr_cnt(transfer-encoding) gt 0 }")
    for status, code in ((413, "request_too_large"), (411, "length_required")):
        error = error_of(rule(text, status))
        assert error["code"] == code
        assert "4096" in str(error["message"])


def test_digest_file_holds_digests_only_owner_readable(tmp_path: Path) -> None:
    other = key_file(tmp_path, "other", "another-key")
    layout = secured(tmp_path, api_key_files=(key_file(tmp_path), other))

    write_digests(layout.security, layout.api_key_digests)

    text = layout.api_key_digests.read_text()
    assert text.splitlines() == [key_digest(KEY), key_digest("another-key")]
    assert key_digest(KEY) == hashlib.sha256(f"Bearer {KEY}".encode()).hexdigest()
    assert KEY not in text
    assert "another-key" not in text
    assert layout.api_key_digests.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("content", "match"), [(None, "cannot be read"), ("", "one key")])
def test_a_missing_or_empty_key_file_is_a_clear_error(
    tmp_path: Path, content: str | None, match: str
) -> None:
    path = tmp_path / "nokey"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RouterError, match=match):
        render_digests(RouterSecurity(api_key_files=(path,)))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"rate_limit_per_s": 0, "api_key_files": (Path("k"),)}, "rate_limit_per_s"),
        ({"rate_limit_per_s": 5}, "needs api_key_files"),
        ({"rate_limit_window_s": 0}, "rate_limit_window_s"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
    ],
)
def test_bad_security_values_are_refused(fields: dict[str, object], match: str) -> None:
    with pytest.raises(RouterError, match=match):
        RouterSecurity(**fields)  # type: ignore[arg-type]


@needs_haproxy
def test_secured_config_is_valid_haproxy(tmp_path: Path) -> None:
    layout = secured(tmp_path)
    write_files(layout, {"a": SlotState(100, True, "stable"), "b": SlotState()})
    write_digests(layout.security, layout.api_key_digests)

    check = subprocess.run(
        [str(DEFAULT_BINARY), "-c", "-f", str(layout.config)], capture_output=True, text=True
    )

    assert check.returncode == 0, check.stderr + check.stdout
    assert KEY not in layout.config.read_text()


# -- the Docker target's settings ----------------------------------------------------------


def test_docker_target_defaults_require_the_key_and_limit_bodies(tmp_path: Path) -> None:
    config = DockerTargetConfig(state_dir=tmp_path)

    security = config.router_layout().security

    assert security.api_key_files == (tmp_path / "secrets" / "api-key",)
    assert security.max_body_bytes == 1 << 20
    assert security.rate_limit_per_s is None  # the load generator shares the one key


def test_docker_target_rate_limit_from_fields_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARYFLOW_DOCKER_ROUTER_RATE_LIMIT_PER_S", "50")
    monkeypatch.setenv("CANARYFLOW_DOCKER_ROUTER_MAX_BODY_BYTES", "null")
    config = DockerTargetConfig(state_dir=tmp_path, router_rate_limit_window_s=10)

    security = config.router_layout().security

    assert (security.rate_limit_per_s, security.rate_limit_window_s) == (50, 10)
    assert security.requests_per_window == 500
    assert security.max_body_bytes is None


@pytest.mark.parametrize(
    "field",
    ["router_rate_limit_per_s", "router_rate_limit_window_s", "router_max_body_bytes"],
)
def test_docker_target_refuses_bad_limits_naming_the_field(tmp_path: Path, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        DockerTargetConfig(state_dir=tmp_path, **{field: 0})  # type: ignore[arg-type]
