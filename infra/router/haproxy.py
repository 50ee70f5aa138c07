"""HAProxy as a managed host process, changed only through its runtime API socket.

    router = HAProxy(layout)                 # layout: ports and files (haproxy_config.py)
    router.start(slots)                      # no-op when it already runs (from any process)
    router.apply({"a": SlotState(90, True, "stable"), "b": SlotState(10, True, "canary")})
    router.servers()["b"].status             # "UP" once /health passes

`apply` rewrites the config (for a future restart) and then sends `set map`,
`set server … state` and `set server … weight` commands in an order that always leaves a
weighted, enabled server: enable before weighting up, weight up before weighting down, and
disable last. The process is never reloaded or restarted by a change.
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.router.errors import RouterError
from infra.router.haproxy_config import (
    BACKEND,
    SLOTS,
    RouterLayout,
    Slots,
    SlotState,
    load_slots,
    write_files,
)
from infra.router.haproxy_security import write_digests
from infra.router.process import ManagedProcess

DEFAULT_BINARY = Path("/usr/sbin/haproxy")


@dataclass(frozen=True)
class ServerStat:
    """One slot of `be_main` as HAProxy sees it now."""

    slot: str
    status: str
    """UP, DOWN, MAINT, NOLB, DRAIN, or a transition such as "UP 1/2" (first word counts)."""
    weight: int
    """The weight set by us (HAProxy's `uweight`)."""
    sessions: int
    """Requests in flight on this slot (`scur`)."""

    @property
    def up(self) -> bool:
        return self.status == "UP"


def plan(current_weights: Mapping[str, int], desired: Slots, roles_map: Path) -> list[str]:
    """Runtime commands that take HAProxy to `desired` without a moment of no server."""
    cmds = [f"set map {roles_map} {slot} {desired[slot].role}" for slot in SLOTS]
    cmds += [f"set server {BACKEND}/{s} state ready" for s in SLOTS if desired[s].enabled]
    up = [s for s in SLOTS if desired[s].weight > current_weights.get(s, 0)]
    down = [s for s in SLOTS if desired[s].weight < current_weights.get(s, 0)]
    cmds += [f"set server {BACKEND}/{s} weight {desired[s].weight}" for s in up + down]
    cmds += [f"set server {BACKEND}/{s} state maint" for s in SLOTS if not desired[s].enabled]
    return cmds


class RuntimeAPI:
    """The admin socket, one command per connection (HAProxy's non-interactive mode)."""

    def __init__(self, path: Path, timeout_s: float = 5) -> None:
        self.path, self.timeout_s = path, timeout_s

    def execute(self, command: str) -> str:
        """The raw answer to `command`; RouterError when the socket does not answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(self.path))
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise RouterError(
                f"HAProxy runtime API at {self.path} does not answer ({exc}); is HAProxy "
                "running? Any target call starts it again"
            ) from exc
        return b"".join(chunks).decode(errors="replace")

    def run(self, command: str) -> None:
        """Execute a command whose success is an empty answer; raise on any other answer."""
        answer = self.execute(command).strip()
        if answer:
            raise RouterError(f"HAProxy refused {command!r}: {answer}")

    def servers(self, backend: str = BACKEND) -> dict[str, ServerStat]:
        text = self.execute("show stat -1 4 -1").lstrip("# ")
        out = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == backend and row.get("svname") in SLOTS:
                out[row["svname"]] = ServerStat(
                    slot=row["svname"],
                    status=row.get("status", ""),
                    weight=int(row.get("uweight") or row.get("weight") or 0),
                    sessions=int(row.get("scur") or 0),
                )
        if set(out) != set(SLOTS):
            raise RouterError(f"HAProxy's {backend} lacks slots {set(SLOTS) - set(out)}")
        return out


class HAProxy:
    """One HAProxy process per router layout; shared by every process using the target."""

    def __init__(self, layout: RouterLayout, binary: Path = DEFAULT_BINARY) -> None:
        self.layout = layout
        self.binary = binary
        self.api = RuntimeAPI(layout.socket)
        self.process = ManagedProcess(
            name="haproxy",
            argv=(str(binary), "-D", "-f", str(layout.config)),
            pidfile=layout.pidfile,
            logfile=layout.logfile,
            marker=str(layout.config),
            daemonizes=True,
        )

    @property
    def url(self) -> str:
        return self.layout.url

    def running(self) -> bool:
        if self.process.pid() is None:
            return False
        try:
            self.api.execute("show info")
        except RouterError:
            return False
        return True

    def start(self, slots: Slots) -> None:
        """Start HAProxy with `slots` unless it runs already (then nothing changes)."""
        if self.running():
            return
        if not self.binary.is_file():
            raise RouterError(f"{self.binary} not found: install HAProxy (apt-get install haproxy)")
        self.process.stop()  # a live process whose socket is gone: start clean
        write_files(self.layout, slots)
        if self.layout.security.api_key_files:  # HAProxy reads the digests only at start
            write_digests(self.layout.security, self.layout.api_key_digests)
        self.check_config()
        self.layout.socket.unlink(missing_ok=True)
        self.process.start()
        deadline = time.monotonic() + 10
        while not self.running():
            if time.monotonic() > deadline:
                raise RouterError(f"HAProxy started but its socket does not answer; "
                                  f"{self.process.log_tail()}")  # fmt: skip
            time.sleep(0.05)

    def check_config(self) -> None:
        proc = subprocess.run(
            [str(self.binary), "-c", "-q", "-f", str(self.layout.config)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RouterError(
                f"HAProxy rejects {self.layout.config}: {proc.stderr.strip() or proc.stdout}"
            )

    def apply(self, slots: Slots) -> None:
        """Make the running HAProxy (and its files) match `slots`, live, without a reload."""
        write_files(self.layout, slots)
        current = {slot: stat.weight for slot, stat in self.servers().items()}
        for cmd in plan(current, slots, self.layout.roles_map):
            self.api.run(cmd)

    def servers(self) -> dict[str, ServerStat]:
        return self.api.servers()

    def weights(self) -> dict[str, int]:
        """Weights live when HAProxy runs, else the last ones written."""
        if self.running():
            return {slot: stat.weight for slot, stat in self.servers().items()}
        return {slot: state.weight for slot, state in load_slots(self.layout).items()}

    def saved_slots(self) -> dict[str, SlotState]:
        return load_slots(self.layout)

    def wait_up(self, slot: str, timeout_s: float) -> None:
        """Until HAProxy's health check passes on `slot`; RouterError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (stat := self.servers()[slot]).status != "UP":
            if time.monotonic() > deadline:
                raise RouterError(
                    f"HAProxy does not see slot {slot} up after {timeout_s:.0f} s "
                    f"(status {stat.status!r}): does GET /health answer 200 on port "
                    f"{self.layout.slot_ports[slot]}?"
                )
            time.sleep(0.1)

    def wait_idle(self, slot: str, timeout_s: float) -> bool:
        """Until no request is in flight on `slot`; False if some still are after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.servers()[slot].sessions > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self.process.stop()
        self.layout.socket.unlink(missing_ok=True)
