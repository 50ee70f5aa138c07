"""haproxy.cfg for the local target: one loopback entry point, two fixed server slots.

Why fixed slots: the stable and the canary each live in slot `a` or `b`, and each slot has a
fixed loopback port its container publishes. The config is then static for the router's
whole life; only weights, maintenance state and the slot→role map change, all through the
runtime API (see haproxy.py). Promote swaps roles between slots without touching a server
line, so nothing is ever reloaded.

Traffic rules, in the order HAProxy applies them:
- `RouterSecurity` rules (haproxy_security.py) answer 401, 429, 411 or 413 themselves when
  keys, a rate limit or a body limit are configured;
- `be_main` balances by weight (round robin, or consistent hashing of a request header for
  sticky A/B) over the slots that are enabled and pass `GET /health`;
- when no weighted slot of `be_main` is up (e.g. the 100 % canary died), `be_fallback` sends
  the request to whichever slot is still up, so a dead canary never takes the service down;
- a request whose connection fails or gets an empty response is retried on another server;
- every response gets `X-Canaryflow-Variant: <role of the slot that answered>`, overriding
  the container's own header: roles move between containers on promote, the router knows
  the current one;
- responses are passed on as they come (`option http-no-delay`), so a server-sent-event
  stream reaches the client chunk by chunk.

Why `http-no-delay`: without it HAProxy sends every piece of a response whose end it has not
seen yet with MSG_MORE ("more is coming, fill the packet first"), and Linux then holds the
bytes until the message ends or its 200 ms cork timer fires. An SSE stream (chunked, its end
unknown until the last token) thus reached clients in 200 ms bursts, or all at once when the
generation took less than 200 ms: time to first token through the router equalled the whole
latency. Measured by tests/e2e/test_router_streaming.py; the cost is a few more packets for
large bodies, nothing for our JSON answers.

The file is rewritten on every change (never reloaded) so that a restarted HAProxy starts
from the latest weights; `Slots` round-trips through state.json for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from infra.router.errors import RouterError
from infra.router.haproxy_security import RouterSecurity, render_rules
from infra.router.process import atomic_write

SLOTS: tuple[str, str] = ("a", "b")
BACKEND = "be_main"
FALLBACK = "be_fallback"
VARIANT_HEADER = "X-Canaryflow-Variant"
NO_ROLE = "none"
MAX_WEIGHT = 256  # HAProxy's limit for a server weight
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; keep a margin


@dataclass(frozen=True)
class SlotState:
    """What the router does with one slot: its weight, whether it may serve, its role."""

    weight: int = 0
    enabled: bool = False
    role: str = NO_ROLE


Slots = Mapping[str, SlotState]


def empty_slots() -> dict[str, SlotState]:
    return {slot: SlotState() for slot in SLOTS}


@dataclass(frozen=True)
class RouterLayout:
    """Ports, options and file locations of one router (one per target name)."""

    state_dir: Path
    port: int
    metrics_port: int
    slot_ports: Mapping[str, int]
    host: str = "127.0.0.1"
    sticky_header: str | None = None
    check_interval_ms: int = 1000
    timeout_server_s: int = 600
    security: RouterSecurity = field(default_factory=RouterSecurity)

    @property
    def config(self) -> Path:
        return self.state_dir / "haproxy.cfg"

    @property
    def roles_map(self) -> Path:
        return self.state_dir / "roles.map"

    @property
    def api_key_digests(self) -> Path:
        """SHA-256 digests of the accepted `Authorization` values (haproxy_security.py)."""
        return self.state_dir / "api-keys.sha256"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "haproxy.pid"

    @property
    def logfile(self) -> Path:
        return self.state_dir / "haproxy.log"

    @property
    def socket(self) -> Path:
        """The runtime API socket; under the temp dir when the state path is too long."""
        path = self.state_dir / "haproxy.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        tag = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"canaryflow-haproxy-{tag}.sock"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def render_config(layout: RouterLayout, slots: Slots) -> str:
    """The whole haproxy.cfg for these slot states."""
    for path in (layout.state_dir, layout.socket):
        if any(c.isspace() or c in "\"'#" for c in str(path)):
            raise RouterError(f"HAProxy paths may not contain spaces or quotes: {path}")
    return "\n".join(
        [_global(layout), _defaults(layout), _frontends(layout), _backends(layout, slots), ""]
    )


def render_map(slots: Slots) -> str:
    """roles.map: `<slot> <role>` per line (every slot present, so `set map` always works)."""
    return "".join(f"{slot} {slots[slot].role}\n" for slot in SLOTS)


def write_files(layout: RouterLayout, slots: Slots) -> None:
    """Config, role map and state.json, each replaced atomically."""
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(layout.config, render_config(layout, slots))
    atomic_write(layout.roles_map, render_map(slots))
    state = {slot: asdict(slots[slot]) for slot in SLOTS}
    atomic_write(layout.state_file, json.dumps(state, indent=2, sort_keys=True))


def load_slots(layout: RouterLayout) -> dict[str, SlotState]:
    """The slot states last written, or all slots empty when none were."""
    try:
        raw = json.loads(layout.state_file.read_text())
        return {slot: SlotState(**raw[slot]) for slot in SLOTS}
    except (OSError, ValueError, KeyError, TypeError):
        return empty_slots()


def _global(layout: RouterLayout) -> str:
    return f"""global
    stats socket {layout.socket} mode 600 level admin
    stats timeout 30s
    nbthread 1
    maxconn 2000
    pidfile {layout.pidfile}
"""


def _defaults(layout: RouterLayout) -> str:
    return f"""defaults
    mode http
    timeout connect 2s
    timeout client {layout.timeout_server_s}s
    timeout server {layout.timeout_server_s}s
    timeout http-request 30s
    timeout http-keep-alive 30s
    timeout queue 30s
    timeout check 2s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
    option http-no-delay
"""


def _frontends(layout: RouterLayout) -> str:
    role = f"%[srv_name,map({layout.roles_map},unknown)]"
    rules = render_rules(layout.security, layout.api_key_digests)
    security = "".join(f"{line}\n" for line in rules)
    return f"""frontend fe_router
    bind {layout.host}:{layout.port}
{security}    use_backend {FALLBACK} if {{ nbsrv({BACKEND}) lt 1 }}
    default_backend {BACKEND}
    http-response set-header {VARIANT_HEADER} {role}

frontend fe_metrics
    bind {layout.host}:{layout.metrics_port}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats
    stats refresh 5s
"""


def _backends(layout: RouterLayout, slots: Slots) -> str:
    if layout.sticky_header:
        balance = f"balance hdr({layout.sticky_header})\n    hash-type consistent"
    else:
        balance = "balance roundrobin"
    inter = layout.check_interval_ms
    main = [
        f"backend {BACKEND}",
        f"    {balance}",
        "    option httpchk",
        "    http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost",
        "    http-check expect status 200",
        f"    default-server check inter {inter}ms fastinter {max(inter // 2, 100)}ms "
        f"downinter {inter * 2}ms rise 2 fall 2",
    ]
    fallback = [f"backend {FALLBACK}", "    balance roundrobin"]
    for slot in SLOTS:
        state, port = slots[slot], layout.slot_ports[slot]
        weight = max(0, min(state.weight, MAX_WEIGHT))
        disabled = "" if state.enabled else " disabled"
        main.append(f"    server {slot} {layout.host}:{port} weight {weight}{disabled}")
        fallback.append(f"    server {slot} {layout.host}:{port} track {BACKEND}/{slot}")
    return "\n".join(main) + "\n\n" + "\n".join(fallback) + "\n"
