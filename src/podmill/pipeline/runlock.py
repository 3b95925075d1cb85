"""One embedded run per data directory: an advisory lock on ``DATA_DIR/run.lock``.

Two ``podmill run`` on one data dir would share its SQLite engine, and each one's
in-process worker would run the other's steps. So the second waits for the first,
saying which process it waits for. The kernel drops the lock when its holder exits,
``kill -9`` included, so a dead run never blocks the next one; the steps the dead run
had leased still wait for their leases to expire (the runner says so too).

POSIX ``flock``: the lock holds between processes on one machine (a data dir on a
network file system shared by two machines is not protected).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LOCK_NAME = "run.lock"


@dataclass(frozen=True)
class Holder:
    """The run that holds the lock, as it wrote itself into the file (may be unknown)."""

    pid: int | None
    since: str | None  # ISO timestamp, UTC

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "pid unknown"
        return f"{who}, since {self.since}" if self.since else who


@contextmanager
def data_dir_lock(data_dir: Path, on_wait: Callable[[Path, Holder], None]) -> Iterator[None]:
    """Hold ``data_dir``'s run lock for the block; if another run holds it, call
    ``on_wait(lock_path, holder)`` once, then wait for it (Ctrl-C stops the wait)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(path, _holder(fd))
            fcntl.flock(fd, fcntl.LOCK_EX)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {since}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # drops the lock


def _holder(fd: int) -> Holder:
    try:
        pid, _, since = os.pread(fd, 200, 0).decode().strip().partition(" ")
        return Holder(int(pid), since or None)
    except (OSError, ValueError, UnicodeDecodeError):  # just created, not written yet
        return Holder(None, None)
