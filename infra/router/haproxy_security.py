"""Who may use the router, how often, and with how big a body: `fe_router`'s first rules.

    security = RouterSecurity(api_key_files=(key_file,), rate_limit_per_s=50,
                              max_body_bytes=1 << 20)
    RouterLayout(..., security=security)      # haproxy_config renders the rules below

Every path except OPEN_PATHS (health, metrics, version: they stay as the servers answer them)
goes through these rules, in this order; each refusal is an OpenAI-style JSON error
(`{"error": {"message", "type", "param", "code"}}`) answered by HAProxy itself:

1. 401 unless the request has exactly one `Authorization` header whose SHA-256 is listed in
   the digest file (only when key files are given);
2. 429 with `Retry-After` when this key sent more than `rate_limit_per_s × window` requests
   in the last `rate_limit_window_s` seconds (a stick table keyed by the key's digest;
   refused requests count too, so a client that ignores Retry-After stays refused);
3. 411 for a chunked body, 413 for a Content-Length over `max_body_bytes`.

Deny by default (rather than guarding only /v1/*) because the servers expose inference
outside /v1 too (vLLM's /invocations, /tokenize, ...), and because a percent-encoded path
(`/%761/...`) is not `/v1/` to HAProxy but is to the server.

Why digests: the key never appears in haproxy.cfg, in the digest file or in the runtime API;
HAProxy hashes the header (`req.fhdr(authorization),sha2(256),hex,lower`, all in 2.6 with
OpenSSL) and looks it up in the file. `fhdr`, not `hdr`: `hdr` would split the value on
commas. The file is written when HAProxy starts (it reads it only then), mode 0600.

Why 411 rather than buffering a chunked body: in HAProxy 2.6 `req.body_size` is the
Content-Length when there is one (checked on the headers alone, whatever the size), but only
the bytes already buffered of a chunked body, and a buffer is 16 KiB (`tune.bufsize`);
checking a 1 MiB limit on chunked bodies would mean 1 MiB buffers on every connection. Our
clients (httpx, requests, the OpenAI client) always send JSON with a Content-Length.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from infra.router.errors import RouterError

OPEN_PATHS: tuple[str, ...] = ("/health", "/ping", "/metrics", "/version")
DEFAULT_MAX_BODY_BYTES = 1 << 20
MAX_RATE_WINDOW_S = 3600


@dataclass(frozen=True)
class RouterSecurity:
    """API keys, per-key rate limit and body size limit of the router; all off by default."""

    api_key_files: tuple[Path, ...] = ()
    """Files holding one accepted key each; empty: no key is required at the router."""
    rate_limit_per_s: int | None = None
    """Requests per second per key, averaged over `rate_limit_window_s`; None: no limit."""
    rate_limit_window_s: int = 1
    max_body_bytes: int | None = None
    """Largest request body (Content-Length); chunked bodies get 411. None: no limit."""

    def __post_init__(self) -> None:
        if self.rate_limit_per_s is not None:
            if self.rate_limit_per_s < 1:
                raise RouterError(f"rate_limit_per_s must be ≥ 1, got {self.rate_limit_per_s}")
            if not self.api_key_files:
                raise RouterError("a per-key rate limit needs api_key_files (keys to count)")
        if not 1 <= self.rate_limit_window_s <= MAX_RATE_WINDOW_S:
            raise RouterError(
                f"rate_limit_window_s must be 1..{MAX_RATE_WINDOW_S}, "
                f"got {self.rate_limit_window_s}"
            )
        if self.max_body_bytes is not None and self.max_body_bytes < 1:
            raise RouterError(f"max_body_bytes must be ≥ 1, got {self.max_body_bytes}")

    @property
    def requests_per_window(self) -> int | None:
        if self.rate_limit_per_s is None:
            return None
        return self.rate_limit_per_s * self.rate_limit_window_s


def key_digest(key: str) -> str:
    """What HAProxy computes from a valid request: sha256("Bearer <key>") in lowercase hex."""
    return hashlib.sha256(f"Bearer {key}".encode()).hexdigest()


def render_digests(security: RouterSecurity) -> str:
    """The digest file: one digest per line, from the key files (never the keys)."""
    lines = []
    for path in security.api_key_files:
        try:
            key = path.read_text().strip()
        except OSError as exc:
            raise RouterError(
                f"API key file {path} cannot be read ({exc}); the router needs it to check "
                "keys (the Docker target creates it on first use)"
            ) from exc
        if not key or any(c.isspace() for c in key):
            raise RouterError(f"API key file {path} must hold one key without spaces")
        lines.append(key_digest(key) + "\n")
    return "".join(lines)


def write_digests(security: RouterSecurity, path: Path) -> None:
    """Replace the digest file atomically, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render_digests(security))
    tmp.replace(path)


def render_rules(security: RouterSecurity, digests: Path) -> list[str]:
    """`fe_router` lines (indented) that enforce `security`; none when it is all off."""
    guarded = "!cf_open"
    lines = [f"    acl cf_open path {' '.join(OPEN_PATHS)}"]
    if security.api_key_files:
        lines += [
            "    acl cf_one_key req.fhdr_cnt(authorization) eq 1",
            f"    acl cf_key_ok req.fhdr(authorization),sha2(256),hex,lower -m str -f {digests}",
            _refuse(
                401, "Missing or invalid API key: send one header Authorization: Bearer KEY.",
                "invalid_request_error", "invalid_api_key",
                f"{guarded} !cf_one_key || {guarded} !cf_key_ok", "WWW-Authenticate Bearer",
            ),
        ]  # fmt: skip
    if (limit := security.requests_per_window) is not None:
        window = security.rate_limit_window_s
        lines += [
            f"    stick-table type binary len 32 size 1k expire {2 * window}s "
            f"store http_req_rate({window}s)",
            f"    http-request track-sc0 req.fhdr(authorization),sha2(256) if {guarded}",
            _refuse(
                429, f"Rate limit: over {limit} requests in {window} s with this API key; "
                f"retry after {window} s.", "rate_limit_error", "rate_limit_exceeded",
                f"{guarded} {{ sc_http_req_rate(0) gt {limit} }}", f"Retry-After {window}",
            ),
        ]  # fmt: skip
    if (size := security.max_body_bytes) is not None:
        lines += [
            _refuse(
                411, f"Chunked request bodies are not accepted: send a Content-Length "
                f"(bodies are limited to {size} bytes).", "invalid_request_error",
                "length_required", f"{guarded} {{ req.hdr_cnt(transfer-encoding) gt 0 }}",
            ),
            _refuse(
                413, f"Request body over {size} bytes.", "invalid_request_error",
                "request_too_large", f"{guarded} {{ req.body_size gt {size} }}",
            ),
        ]  # fmt: skip
    return lines if len(lines) > 1 else []


def error_body(message: str, kind: str, code: str) -> str:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _refuse(
    status: int, message: str, kind: str, code: str, condition: str, header: str | None = None
) -> str:
    body = error_body(message, kind, code)
    assert "'" not in body, "HAProxy's single-quoted string cannot hold a single quote"
    hdr = f" hdr {header}" if header else ""
    return (
        f"    http-request return status {status} content-type application/json "
        f"string '{body}'{hdr} if {condition}"
    )
