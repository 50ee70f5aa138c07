"""A host process canaryflow starts, finds again from another process, and stops.

The pid file alone is not trusted: a pid is ours only while /proc/<pid>/cmdline still holds
`marker` (the process's own config path), so a reused pid is never signalled. Linux only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.router.errors import RouterError


@dataclass(frozen=True)
class ManagedProcess:
    """`argv` run detached from the caller (own session), so it outlives the pipeline process.

    `daemonizes=True` is for programs that fork themselves and write `pidfile` (haproxy -D):
    start() then waits for the parent to exit and reads the pid file.
    """

    name: str
    argv: tuple[str, ...]
    pidfile: Path
    logfile: Path
    marker: str
    daemonizes: bool = False

    def pid(self) -> int | None:
        """The pid of our live process, or None."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid, self.marker) else None

    def start(self, timeout_s: float = 30) -> int:
        """Start it unless it runs; returns the pid. Raises RouterError with the log tail."""
        if (pid := self.pid()) is not None:
            return pid
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)
        with self.logfile.open("ab") as log:
            proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, close_fds=True,
            )  # fmt: skip
        if self.daemonizes:
            try:
                code = proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = -9
            if code != 0:
                raise RouterError(f"{self.name} failed to start (exit {code}): {self.log_tail()}")
        else:
            self.pidfile.write_text(f"{proc.pid}\n")
        # Right after exec the kernel may not have filled /proc/<pid>/cmdline yet: poll.
        deadline = time.monotonic() + 5
        while (pid := self.pid()) is None:
            if time.monotonic() > deadline or (not self.daemonizes and proc.poll() is not None):
                raise RouterError(f"{self.name} exited right after start: {self.log_tail()}")
            time.sleep(0.02)
        return pid

    def stop(self, timeout_s: float = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`; a no-op when it does not run."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid, self.marker):
            time.sleep(0.05)
        if _alive(pid, self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.logfile.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log at {self.logfile})"
        return f"last lines of {self.logfile}:\n" + "\n".join(text)


def _alive(pid: int, marker: str) -> bool:
    """True if `pid` runs (not a zombie) and its command line contains `marker`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it was our child
        return False
    return marker.encode() in cmdline.replace(b"\0", b" ")


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename (readers see the old or the new file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
