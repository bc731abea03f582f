"""A lock file beside the DuckDB file, so another process can copy the store consistently.

DuckDB lets one process open the file, so `openpanel backup` cannot read it through DuckDB while the
server runs. Instead the store holds a shared flock around every call that writes the file (appends,
checkpoints, deletes, rewrites, open and close); the backup takes it exclusively and copies the
database file and its WAL while nothing writes them: the copy is what a kill -9 at that instant would
leave, which DuckDB recovers from. Ingest meanwhile keeps going into the spool.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


def guard_path(store_path: Path | str) -> Path:
    return Path(f"{store_path}.guard")


class FileGuard:
    """flock(2) on `guard_path(store_path)`; the file is created owner-only on first use."""

    def __init__(self, store_path: Path | str) -> None:
        self._fd = os.open(guard_path(store_path), os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        if self._fd < 0:  # closed: the store raises its own "closed" error
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self, timeout_s: float) -> Iterator[None]:
        """Wait (polling) for every writer to step out; TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("the event store stayed busy") from None
                time.sleep(0.005)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
