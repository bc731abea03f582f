"""The event store port: a narrow Protocol that each backend adapter implements, and the factory
that picks the adapter from the config once, at start-up (house-style §5.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from openpanel_lite.config import Config
from openpanel_lite.paths import events_path
from openpanel_lite.storage.dialects import Dialect
from openpanel_lite.storage.rows import WriteBatch


class StoreError(Exception):
    """The event store cannot serve requests (e.g. DuckDB invalidated itself after a fatal error)."""


class EventStore(Protocol):
    dialect: Dialect

    def migrate(self) -> None:
        """Apply the schema migrations not yet applied; a no-op when up to date."""

    def append(self, batch: WriteBatch) -> None:
        """Write every row of the batch and its spool watermark in one transaction: all or nothing.

        Called only by the single ingest writer.
        """

    def watermark(self) -> int:
        """The highest spool id committed with its rows; 0 when none."""

    def fetch(self, sql: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        """Run a read-only statement with named parameters. Safe from any thread, concurrently
        with append()."""

    def delete_project(self, project_id: str) -> None:
        """Delete every row of a project from every table."""

    def erase_profile(self, project_id: str, profile_id: str) -> int:
        """GDPR erasure (reliability §5): delete the profile's rows, its events (those carrying the
        profile id, plus every event of a session the profile took part in) and those sessions, from
        every table; returns the number of rows deleted.

        Deleted values must be physically gone from the store's files when this returns (DuckDB:
        a rewrite of the file; ClickHouse: a synchronous mutation), not only hidden from queries.
        Called only by the single ingest writer (or with no writer running).
        """

    def check(self) -> None:
        """Raise StoreError when the store cannot answer queries (for /healthz)."""

    def checkpoint(self) -> None:
        """Flush the write-ahead log into the main file."""

    def close(self) -> None:
        """Release the files; the store is unusable afterwards."""


def open_store(cfg: Config) -> EventStore:
    """The configured store, opened and migrated."""
    store: EventStore
    match cfg.storage.backend:
        case "duckdb":
            from openpanel_lite.storage.duckdb import DuckDBStore

            duck = cfg.storage.duckdb
            store = DuckDBStore(
                events_path(cfg.data_dir),
                memory_limit=duck.memory_limit,
                threads=duck.threads,
                checkpoint_threshold=duck.checkpoint_threshold,
            )
        case "clickhouse":
            from openpanel_lite.storage.clickhouse import ClickHouseStore

            ch = cfg.storage.clickhouse
            store = ClickHouseStore(
                ch.url,
                database=ch.database,
                user=ch.user,
                password=ch.password,
                cluster=ch.cluster,
                node=ch.node,
            )
    store.migrate()
    return store


__all__ = ["EventStore", "StoreError", "WriteBatch", "open_store"]
