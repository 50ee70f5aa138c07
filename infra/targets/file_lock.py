"""An exclusive lock on a file, waited for up to a deadline (every mutating Docker-target call
holds the target's, so two processes never interleave the steps of a release)."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

from infra.errors import DeployError


@contextlib.contextmanager
def locked(path: Path, timeout_s: float, holder: str) -> Iterator[None]:
    """Hold an exclusive flock on `path`; DeployError naming `holder` after `timeout_s`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DeployError(
                        f"another process holds {path} ({holder}); wait for it to finish"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
