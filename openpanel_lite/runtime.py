"""The process's long-lived parts (metadata DB, event store, metrics) and their health.

Opened once at startup and closed at shutdown by the app's lifespan; tests may inject their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from openpanel_lite import logs, paths
from openpanel_lite.config import Config
from openpanel_lite.ingest.setup import IngestRuntime
from openpanel_lite.meta.db import MetaDB
from openpanel_lite.metrics import Metrics
from openpanel_lite.storage import EventStore, open_store


class StartupError(Exception):
    """A problem that stops the server from starting; the message is one line for the user."""


class PartHealth(msgspec.Struct, frozen=True):
    ok: bool
    error: str | None = None


class QueueHealth(msgspec.Struct, frozen=True):
    size: int


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok", "fail"]
    meta: PartHealth
    store: PartHealth
    queues: dict[str, QueueHealth]
    failed: list[str] = msgspec.field(default_factory=list)


def ensure_data_dir(data_dir: Path) -> None:
    """Create the data dir and prove it is writable, or raise StartupError."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StartupError(f"data dir {data_dir} cannot be created: {e.strerror}") from None
    probe = data_dir / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StartupError(f"data dir {data_dir} is not writable: {e.strerror}") from None


class Runtime:
    """Owns the metadata DB and the event store for one process."""

    def __init__(
        self,
        cfg: Config,
        *,
        meta: MetaDB | None = None,
        store: EventStore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.cfg = cfg
        self._own_meta = meta is None
        self._own_store = store is None
        self._meta = meta
        self._store = store
        self.metrics = metrics or Metrics()
        self._ingest: IngestRuntime | None = None
        self._serving = False

    @property
    def meta(self) -> MetaDB:
        if self._meta is None:
            raise RuntimeError("runtime not started")
        return self._meta

    @property
    def store(self) -> EventStore:
        if self._store is None:
            raise RuntimeError("runtime not started")
        return self._store

    @property
    def ingest(self) -> IngestRuntime:
        if self._ingest is None:
            raise RuntimeError("runtime not started")
        return self._ingest

    def start(self) -> None:
        """Open (and migrate) what was not injected; raise StartupError with a one-line reason."""
        if self._own_meta or self._own_store:
            ensure_data_dir(self.cfg.data_dir)
        if self._meta is None:
            path = paths.meta_path(self.cfg.data_dir)
            try:
                self._meta = MetaDB(path, busy_timeout_ms=self.cfg.meta.busy_timeout_ms)
                applied = self._meta.migrate()
            except Exception as e:  # apsw raises many types; the user needs one line
                raise StartupError(f"metadata database {path}: {e}") from e
            if applied:
                logs.log("meta_migrated", versions=applied)
        if self._store is None:
            try:
                self._store = open_store(self.cfg)
                self._store.migrate()
            except Exception as e:
                raise StartupError(f"event store: {e}") from e
        if self._ingest is None:
            try:
                self._ingest = IngestRuntime(self.cfg, self.meta, self.store, self.metrics)
            except Exception as e:
                raise StartupError(f"ingest spool: {e}") from e

    async def start_serving(self) -> None:
        """The async half of startup (spool replay, background jobs); needs the event loop."""
        self.start()
        if not self._serving:
            await self.ingest.start()
            self._serving = True

    async def stop_serving(self) -> None:
        """Drain ingest into the store within server.shutdown_timeout_s; the rest stays spooled."""
        if self._serving and self._ingest is not None:
            self._serving = False
            await self._ingest.stop(self.cfg.server.shutdown_timeout_s)
        self._ingest = None

    def close(self) -> None:
        if self._store is not None and self._own_store:
            self._store.close()
            self._store = None
        if self._meta is not None and self._own_meta:
            self._meta.close()
            self._meta = None

    def health(self) -> Health:
        meta = _probe(self._meta.check if self._meta else None)
        store = _probe(self._store.check if self._store else None)
        queues = {name: QueueHealth(size) for name, size in self.metrics.queue_sizes().items()}
        failed = [name for name, part in (("meta", meta), ("store", store)) if not part.ok]
        return Health("fail" if failed else "ok", meta, store, queues, failed)


def _probe(check: object) -> PartHealth:
    if check is None or not callable(check):
        return PartHealth(False, "not open")
    try:
        check()
    except Exception as e:
        return PartHealth(False, str(e) or type(e).__name__)
    return PartHealth(True)
