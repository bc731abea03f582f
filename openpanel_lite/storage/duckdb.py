"""DuckDBStore: the embedded event store. One writer appends Arrow batches in one transaction
each; readers run on their own cursors from any thread and see consistent snapshots.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import duckdb

from openpanel_lite.logs import warn
from openpanel_lite.storage import StoreError
from openpanel_lite.storage.arrow_rows import to_arrow
from openpanel_lite.storage.columns import TABLES, column_names
from openpanel_lite.storage.dialects import DUCKDB, Dialect
from openpanel_lite.storage.file_guard import FileGuard
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


# GDPR erase (reliability §5): the profile's sessions are those it appears in, in either table; every
# event of such a session goes too (the anonymous page views before an identify carry the device id).
_ERASE_SESSIONS_SQL = """-- sql
    CREATE TEMP TABLE _erase_sessions AS
    SELECT DISTINCT session_id AS id FROM events
    WHERE project_id = $project_id AND profile_id = $profile_id AND session_id <> ''
    UNION
    SELECT DISTINCT id FROM sessions WHERE project_id = $project_id AND profile_id = $profile_id"""
_ERASE_SQL: Final = (
    """DELETE FROM events WHERE project_id = $project_id
       AND (profile_id = $profile_id OR session_id IN (SELECT id FROM _erase_sessions))""",
    """DELETE FROM sessions WHERE project_id = $project_id
       AND (profile_id = $profile_id OR id IN (SELECT id FROM _erase_sessions))""",
    "DELETE FROM profiles WHERE project_id = $project_id AND id = $profile_id",
)
_ERASE_VIEW_DURATIONS_SQL: Final = """DELETE FROM view_durations WHERE project_id = $project_id
    AND session_id IN (SELECT id FROM _erase_sessions)"""
_ERASE_PAGE_VIEWS_SQL: Final = """DELETE FROM page_views WHERE project_id = $project_id
    AND (profile_id = $profile_id OR session_id IN (SELECT id FROM _erase_sessions))"""
# DuckDB's errors for a WAL it cannot apply, matched on the message (2.x has no dedicated exception
# class): damaged (checksum or structure; fails mid-replay; a truncated tail DuckDB ignores itself), or
# stale — written before the file's last checkpoint, which a kill between that checkpoint's header
# write and the WAL's removal leaves behind (DuckDB then refuses to open at all). Both are set aside
# (see _connect).
_WAL_UNUSABLE = ("replaying WAL", "WAL checkpoint iteration does not match")


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


def _fatal(error: BaseException) -> bool:
    """DuckDB invalidated the database (only a reopen helps), per this error or its cause."""
    for e in (error, error.__cause__):
        if isinstance(e, duckdb.FatalException) or (e is not None and "invalidated" in str(e)):
            return True
    return False


def _fsync_dir(folder: Path) -> None:
    # The rename must be durable before the caller reports the erase done.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
        self._config = config
        # Shared while this process writes the file; `openpanel backup` takes it exclusively.
        self._file_guard = FileGuard(self.path) if self.path != ":memory:" else None
        try:
            with self._guard():
                self._con, self._cursor_source = self._open()
        except BaseException:
            if self._file_guard is not None:
                self._file_guard.close()
            raise
        self._write_lock = threading.Lock()
        self._cursor_lock = threading.Lock()
        # Readers in flight; a file rewrite (erase) waits for them to finish before it closes the file.
        self._readers = 0
        self._readers_done = threading.Condition(self._cursor_lock)
        self._invalidated = False  # DuckDB reported a fatal error: reopen before the next write
        self._closed = False

    def _guard(self) -> contextlib.AbstractContextManager[None]:
        return self._file_guard.shared() if self._file_guard is not None else contextlib.nullcontext()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The in-process write lock, then the file guard (see storage/file_guard.py); reopens a
        database DuckDB invalidated, and notes a fatal error for the next caller to reopen."""
        with self._write_lock, self._guard():
            if self._invalidated and not self._closed:
                self._reopen()
            try:
                yield
            except (duckdb.Error, StoreError) as e:
                if _fatal(e):
                    self._invalidated = True
                raise

    def _reopen(self) -> None:
        # A failed CHECKPOINT (e.g. ENOSPC) is fatal: DuckDB refuses every call until the database is
        # opened again (reliability §2.2). The file itself is intact; the WAL replays on open.
        with self._cursor_lock:
            while self._readers:
                self._readers_done.wait()
            for con in (self._cursor_source, self._con):
                with contextlib.suppress(duckdb.Error):
                    con.close()
            try:
                self._con, self._cursor_source = self._open()
            except duckdb.Error as e:
                raise StoreError(f"DuckDB store at {self.path} could not be reopened: {e}") from e
            self._invalidated = False
        warn("duckdb_reopened", path=self.path)

    def _open(self) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
        """Connect, lock the configuration down and make the cursor source."""
        con = self._connect()
        try:
            for statement in _LOCKDOWN:
                con.execute(statement)
            # Only ever used to spawn reader cursors, so it is never busy when one is needed.
            return con, con.cursor()
        except BaseException:
            con.close()
            raise

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(self.path, config=self._config)
        except duckdb.Error as e:
            wal = Path(f"{self.path}.wal")
            if not any(sign in str(e) for sign in _WAL_UNUSABLE) or not wal.exists():
                raise
            # An unreplayable WAL would stop every start (a crash loop, reliability §2.3). Set it aside
            # and open the file as of its last checkpoint: the spool still holds every record above
            # the watermark that checkpoint covers and replays them (a stale WAL's rows are in the
            # file already).
            aside = Path(f"{self.path}.wal.quarantined-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
            wal.rename(aside)
            warn("duckdb_wal_quarantined", path=str(aside), bytes=aside.stat().st_size, error=str(e))
            return duckdb.connect(self.path, config=self._config)

    # ---------------------------------------------------------------- writes

    def migrate(self) -> None:
        with self._writing():
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
        with self._writing():
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
        with self._writing():
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

    def erase_profile(self, project_id: str, profile_id: str) -> int:
        params = {"project_id": project_id, "profile_id": profile_id}
        with self._writing():
            self._check_open()
            con = self._con
            con.begin()
            try:
                con.execute(_ERASE_SESSIONS_SQL, params)
                deleted = 0
                for statement in _ERASE_SQL:
                    deleted += int(con.execute(statement, params).fetchall()[0][0])
                # Time-on-page rows name no profile, only its sessions (not counted: they are not events).
                con.execute(_ERASE_VIEW_DURATIONS_SQL, {"project_id": project_id})
                con.execute(_ERASE_PAGE_VIEWS_SQL, params)
                con.execute("DROP TABLE _erase_sessions")
                con.commit()
            except BaseException:
                self._rollback()
                raise
            if self.path != ":memory:":
                # DELETE only marks rows; their bytes stay in the file's blocks (reliability §2.5).
                self._rewrite()
            return deleted

    def _rewrite(self) -> None:
        """Copy every table into a new file and put it in place of the old one, so deleted values are
        physically gone. Holds the write lock; waits for readers in flight, blocks new ones meanwhile."""
        fresh = Path(f"{self.path}.rewrite")
        with self._cursor_lock:
            while self._readers:
                self._readers_done.wait()
            self._cursor_source.close()
            self._con.close()
            try:
                for leftover in (fresh, Path(f"{fresh}.wal")):
                    leftover.unlink(missing_ok=True)
                # A plain connection: the locked-down one may not attach files.
                con = duckdb.connect(self.path, config=self._config)
                try:
                    source = con.execute("SELECT current_database()").fetchall()[0][0]
                    target = str(fresh).replace("'", "''")
                    con.execute(f"ATTACH '{target}' AS _rewrite")
                    con.execute(f'COPY FROM DATABASE "{source}" TO _rewrite')
                    con.execute("DETACH _rewrite")
                    con.execute("CHECKPOINT")
                finally:
                    con.close()
                # close() checkpointed, so no WAL belongs to the old file; never pair one with the new.
                Path(f"{self.path}.wal").unlink(missing_ok=True)
                os.replace(fresh, self.path)
                _fsync_dir(Path(self.path).parent)
            finally:
                self._con, self._cursor_source = self._open()

    def checkpoint(self) -> None:
        with self._writing():
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
        except duckdb.Error as e:
            if _fatal(e):
                self._invalidated = True
            raise
        finally:
            cursor.close()
            with self._cursor_lock:
                self._readers -= 1
                if not self._readers:
                    self._readers_done.notify_all()

    def watermark(self) -> int:
        rows = self.fetch("SELECT max(watermark) FROM _spool_watermark", {})
        return int(rows[0][0] or 0)

    def check(self) -> None:
        try:
            if self._invalidated:
                with self._writing():  # reopens; health recovers even while nothing is written
                    pass
            self.fetch("SELECT count(*) FROM _spool_watermark", {})
        except (duckdb.Error, StoreError) as e:
            raise StoreError(f"DuckDB store at {self.path} is not usable: {e}") from e

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A reader cursor, counted in `_readers`: the caller must decrement when done."""
        with self._cursor_lock:
            self._check_open()
            cursor = self._cursor_source.cursor()
            self._readers += 1
            return cursor

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self._writing(), self._cursor_lock:
            if self._closed:
                return
            self._closed = True
            self._cursor_source.close()
            self._con.close()
        if self._file_guard is not None:
            self._file_guard.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
