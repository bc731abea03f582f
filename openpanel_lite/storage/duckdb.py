"""DuckDBStore: the embedded event store. One writer appends Arrow batches in one transaction
each; readers run on their own cursors from any thread and see consistent snapshots.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import duckdb

from openpanel_lite.storage import StoreError
from openpanel_lite.storage.arrow_rows import to_arrow
from openpanel_lite.storage.columns import TABLES, column_names
from openpanel_lite.storage.dialects import DUCKDB, Dialect
from openpanel_lite.storage.rows import ProfileLink, WriteBatch

MIB: Final = 1024 * 1024
# Cap for the default memory limit: plenty for one small site's dashboard queries.
_DEFAULT_MEMORY_CAP: Final = 1024 * MIB
# Below this DuckDB cannot even replay a modest WAL after a crash (reliability §2.3).
_DEFAULT_MEMORY_FLOOR: Final = 128 * MIB

# Run after the connection is configured; lock_configuration must stay last (reliability §2.6).
_LOCKDOWN: Final = (
    # TIMESTAMPTZ only appears mid-expression (time-zone conversion); keep its rendering fixed.
    "SET TimeZone = 'UTC'",
    "SET enable_external_access = false",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET lock_configuration = true",
)

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


# The anonymous events of an identified visit take the profile id; the time bound lets zone maps
# skip older row groups, since events arrive roughly in time order.
LINK_PROFILE_SQL = """-- sql
    UPDATE events SET profile_id = $profile_id
    WHERE project_id = $project_id AND session_id = $session_id AND profile_id = $device_id
      AND created_at >= $since AND created_at <= $until"""


def _naive_utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


def _link_params(link: ProfileLink) -> dict[str, object]:
    return {
        "profile_id": link.profile_id,
        "project_id": link.project_id,
        "session_id": link.session_id,
        "device_id": link.device_id,
        # session_start sits 100 ms before the session's first event.
        "since": _naive_utc(link.since) - timedelta(seconds=1),
        "until": _naive_utc(link.until),
    }


def duckdb_memory_limit(available_bytes: int | None = None) -> str:
    """The default memory_limit: 25% of the RAM this process may use (or of `available_bytes`),
    at most 1 GiB and at least 128 MiB."""
    available = _available_memory() if available_bytes is None else available_bytes
    limit = min(available // 4, _DEFAULT_MEMORY_CAP)
    return f"{max(limit, _DEFAULT_MEMORY_FLOOR) // MIB}MiB"


def _available_memory() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    # A container's cgroup limit, when there is one, is what the OOM killer enforces.
    try:
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(cgroup)) if cgroup.isdigit() else total


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def migrations() -> Iterator[tuple[int, str, str]]:
    """(version, file name, SQL) of each schema/duckdb/NNN_*.sql file, in order."""
    folder = resources.files("openpanel_lite.storage").joinpath("schema", "duckdb")
    found = sorted((f.name, f) for f in folder.iterdir() if f.name.endswith(".sql"))
    for expected, (name, file) in enumerate(found, start=1):
        match = _MIGRATION_NAME.match(name)
        if match is None or int(match.group(1)) != expected:
            raise RuntimeError(f"schema/duckdb/{name}: expected a file named {expected:03d}_<name>.sql")
        yield expected, name, file.read_text(encoding="utf-8")


class DuckDBStore:
    """The EventStore on one DuckDB file (or ':memory:')."""

    dialect: Dialect = DUCKDB

    def __init__(
        self,
        path: Path | str,
        *,
        memory_limit: str = "",
        threads: int = 0,
        checkpoint_threshold: str = "16MiB",
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": memory_limit or duckdb_memory_limit(),
            "threads": threads or _cpu_count(),
            "checkpoint_threshold": checkpoint_threshold,
            # Lets DuckDB parallelise inserts and scans; no result here depends on row order.
            "preserve_insertion_order": False,
        }
        self._con = duckdb.connect(self.path, config=config)
        try:
            for statement in _LOCKDOWN:
                self._con.execute(statement)
            # Only ever used to spawn reader cursors, so it is never busy when one is needed.
            self._cursor_source = self._con.cursor()
        except BaseException:
            self._con.close()
            raise
        self._write_lock = threading.Lock()
        self._cursor_lock = threading.Lock()
        self._closed = False

    # ---------------------------------------------------------------- writes

    def migrate(self) -> None:
        with self._write_lock:
            self._check_open()
            con = self._con
            con.execute(
                "CREATE TABLE IF NOT EXISTS _migrations"
                " (version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
            )
            applied = {row[0] for row in con.execute("SELECT version FROM _migrations").fetchall()}
            for version, name, sql in migrations():
                if version in applied:
                    continue
                con.begin()
                try:
                    con.execute(sql)
                    con.execute(
                        "INSERT INTO _migrations VALUES ($version, $name, $now)",
                        {"version": version, "name": name, "now": datetime.now(UTC).replace(tzinfo=None)},
                    )
                    con.commit()
                except BaseException:
                    self._rollback()
                    raise

    def append(self, batch: WriteBatch) -> None:
        # Arrow conversion is plain Python work: do it before taking the lock or a transaction.
        arrow = {table: to_arrow(table, rows) for table, rows in batch.tables().items() if rows}
        with self._write_lock:
            self._check_open()
            con = self._con
            # NOTE: views are registered outside the transaction: unregistering inside an aborted
            # one fails and would hide the error that aborted it.
            for table, data in arrow.items():
                con.register(f"_append_{table}", data)
            try:
                con.begin()
                try:
                    for table in arrow:
                        columns = ", ".join(f'"{c}"' for c in column_names(table))
                        con.execute(
                            f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM _append_{table}'
                        )
                    for link in batch.profile_links:
                        con.execute(LINK_PROFILE_SQL, _link_params(link))
                    if batch.spool_watermark is not None:
                        # greatest(): a replayed, older batch must never move the mark backwards.
                        con.execute(
                            "UPDATE _spool_watermark SET watermark = greatest(watermark, $mark)",
                            {"mark": batch.spool_watermark},
                        )
                    con.commit()
                except BaseException:
                    self._rollback()
                    raise
            finally:
                for table in arrow:
                    con.unregister(f"_append_{table}")

    def delete_project(self, project_id: str) -> None:
        # NOTE: deleted rows keep their disk space until a compaction (reliability §2.5).
        with self._write_lock:
            self._check_open()
            con = self._con
            con.begin()
            try:
                for table in TABLES:
                    con.execute(
                        f'DELETE FROM "{table}" WHERE project_id = $project_id', {"project_id": project_id}
                    )
                con.commit()
            except BaseException:
                self._rollback()
                raise

    def checkpoint(self) -> None:
        with self._write_lock:
            self._check_open()
            self._con.execute("CHECKPOINT")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the DuckDB store is closed")

    def _rollback(self) -> None:
        try:
            self._con.rollback()
        except duckdb.Error as e:
            # After a fatal error DuckDB invalidates the database; only a reopen helps.
            raise StoreError(f"DuckDB rollback failed, the store must be reopened: {e}") from e

    # ---------------------------------------------------------------- reads

    def fetch(self, sql: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        cursor = self._cursor()
        try:
            return cursor.execute(sql, dict(params)).fetchall()
        finally:
            cursor.close()

    def watermark(self) -> int:
        rows = self.fetch("SELECT max(watermark) FROM _spool_watermark", {})
        return int(rows[0][0] or 0)

    def check(self) -> None:
        try:
            self.fetch("SELECT count(*) FROM _spool_watermark", {})
        except (duckdb.Error, StoreError) as e:
            raise StoreError(f"DuckDB store at {self.path} is not usable: {e}") from e

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._cursor_lock:
            self._check_open()
            return self._cursor_source.cursor()

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self._write_lock, self._cursor_lock:
            if self._closed:
                return
            self._closed = True
            self._cursor_source.close()
            self._con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
