"""Where captured exchanges go. Contract: `submit` never blocks and never raises.

`JsonlSink` writes one redacted JSON line per exchange from a background thread into
`<dir>/<stem>.jsonl`, rotates by size (`<stem>.<utc-time>.jsonl`, keeping `backups` of
them), and drops records with a counter when its queue is full, the disk is (nearly) full
or a write fails: serving never fails because capture fails. `MemorySink` is the fake.

    sink = JsonlSink(Path("/capture"), RegexRedactor([r"\\d{16}"]), stem="capture-canary")
    sink.submit(exchange)      # returns at once
    sink.drain(5)              # tests: wait until written
    sink.stats()               # {"written": 1, "dropped": 0, ...}
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from serving.capture import Exchange, Redactor, build_record

log = logging.getLogger("canaryflow.capture")
DROP_REASONS = ("queue_full", "disk_full", "write_error", "record_error")


class CaptureSink(Protocol):
    """Receives every captured exchange."""

    def submit(self, exchange: Exchange) -> None: ...

    def stats(self) -> dict[str, int]: ...


class NullSink:
    """Capture disabled."""

    def submit(self, exchange: Exchange) -> None:
        return None

    def stats(self) -> dict[str, int]:
        return {"written": 0, "dropped": 0}


class MemorySink:
    """Keeps the built records in memory (the fake for tests)."""

    def __init__(self, redact: Redactor = str) -> None:
        self.records: list[dict[str, Any]] = []
        self._redact = redact

    def submit(self, exchange: Exchange) -> None:
        self.records.append(build_record(exchange, self._redact))

    def stats(self) -> dict[str, int]:
        return {"written": len(self.records), "dropped": 0}


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


class JsonlSink:
    """Bounded, rotating JSONL writer on a daemon thread."""

    def __init__(
        self,
        directory: Path,
        redact: Redactor,
        *,
        stem: str = "capture",
        max_bytes: int = 64 << 20,
        backups: int = 4,
        min_free_bytes: int = 64 << 20,
        queue_size: int = 1000,
        free_bytes: Any = disk_free,
    ) -> None:
        self.directory = directory
        self.path = directory / f"{stem}.jsonl"
        self._stem, self._redact = stem, redact
        self._max_bytes, self._backups, self._min_free = max_bytes, backups, min_free_bytes
        self._free_bytes = free_bytes
        self._queue: queue.Queue[Exchange | None] = queue.Queue(maxsize=queue_size)
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._rotations = 0
        self._thread = threading.Thread(target=self._run, name="canaryflow-capture", daemon=True)
        self._thread.start()

    def submit(self, exchange: Exchange) -> None:
        try:
            self._queue.put_nowait(exchange)
        except queue.Full:
            self._drop("queue_full")

    def stats(self) -> dict[str, int]:
        with self._lock:
            dropped = sum(self._counts[r] for r in DROP_REASONS)
            return {"written": self._counts["written"], "dropped": dropped, **self._counts}

    def drain(self, timeout_s: float) -> bool:
        """Wait until every submitted record is written or dropped; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            exchange = self._queue.get()
            try:
                if exchange is None:
                    self._close_fd()
                    return
                self._write(exchange)
            except Exception:  # the writer thread must outlive any bad record
                log.exception("capture: unexpected error; record dropped")
                self._drop("write_error")
            finally:
                self._queue.task_done()

    def _write(self, exchange: Exchange) -> None:
        try:
            record = build_record(exchange, self._redact)
            data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        except Exception:
            log.exception("capture: could not build the record; dropped")
            self._drop("record_error")
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self._free_bytes(self.directory) - len(data) < self._min_free:
                self._drop("disk_full")
                return
            self._rotate_if_needed(len(data))
            self._append(data)
        except OSError as exc:
            self._close_fd()
            self._drop("disk_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "write_error")
            return
        with self._lock:
            self._counts["written"] += 1

    def _append(self, data: bytes) -> None:
        """One line, all or nothing: a partial write is cut off again."""
        fd = self._open()
        before = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write")
        except OSError:
            with contextlib.suppress(OSError):  # cut the partial line off, if the fs lets us
                os.ftruncate(fd, before)
            raise

    def _open(self) -> int:
        if self._fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._fd = os.open(self.path, flags, 0o640)
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + incoming <= self._max_bytes:
            return
        self._close_fd()
        self._rotations += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.path.rename(self.directory / f"{self._stem}.{stamp}-{self._rotations:06d}.jsonl")
        rotated = sorted(self.directory.glob(f"{self._stem}.*.jsonl"))
        for old in rotated[: max(0, len(rotated) - self._backups)]:
            old.unlink(missing_ok=True)

    def _drop(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] += 1
            total = sum(self._counts[r] for r in DROP_REASONS)
        if total == 1 or total % 1000 == 0:
            log.warning("capture: %d record(s) dropped so far (latest: %s)", total, reason)
