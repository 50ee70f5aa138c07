"""Local helper servers (the transformers server, the trivial server) as pinned children.

    with child_server(["-m", "bench.hf_server", model, "--port", "8123"], 8123, cpus="0"):
        ...   # http://127.0.0.1:8123 answers /health

The child runs in its own session under `taskset -c CPUS` (when given) and is stopped by
its pid (SIGTERM, then SIGKILL) however the block ends; its output goes to `log`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.client import wait_ready
from bench.common import ROOT
from infra.load.runner import kill_group


def pinned_command(argv: Sequence[str], cpus: str | None) -> list[str]:
    """`argv` under `taskset -c cpus` when cpus is given and taskset exists."""
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *argv]
    return list(argv)


@contextlib.contextmanager
def child_server(
    python_args: Sequence[str],
    port: int,
    *,
    cpus: str | None = None,
    log: Path | None = None,
    ready_path: str = "/health",
    ready_timeout_s: float = 180,
) -> Iterator[str]:
    """Start `python python_args` (repo root, PYTHONPATH=.), wait for it; yields its URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    argv = pinned_command([sys.executable, *python_args], cpus)
    out = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, ready_timeout_s, ready_path)
        yield url
    finally:
        stop(proc)
        if log:
            out.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    """SIGTERM the child's process group, SIGKILL it after `grace_s`."""
    kill_group(proc, grace_s)
