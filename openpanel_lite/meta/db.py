"""MetaDB: one apsw connection to the metadata SQLite file, guarded by a lock, with numbered migrations.

Migrations are ``migrations/NNN_name.sql`` files, forward-only, tracked by ``PRAGMA user_version``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import apsw
import msgspec

from openpanel_lite.meta.errors import MetaError

SQLValue = None | int | float | str | bytes
Params = Mapping[str, SQLValue]
Row = tuple[Any, ...]

MEMORY = ":memory:"
_MIGRATION_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str


def package_migrations() -> Traversable:
    """The migrations folder shipped inside the package (works from a wheel or a checkout)."""
    return files("openpanel_lite.meta").joinpath("migrations")


def load_migrations(folder: Traversable) -> list[Migration]:
    """Read ``NNN_name.sql`` files in version order; versions must run 1, 2, 3… without gaps."""
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            raise MetaError(f"migration file name {entry.name!r} is not of the form NNN_name.sql")
        found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MetaError(f"migrations must be numbered 1, 2, 3… without gaps; found {migration.name}")
    return found


def _create_private_file(path: Path) -> None:
    """Create an empty file readable by the owner only: it will hold password and secret hashes.

    SQLite gives the -wal and -shm files the main file's permissions, so they inherit 0600 too.
    """
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


class MetaDB:
    """Thread-safe access to the metadata database.

    Every call takes a re-entrant lock around the one connection, so a ``transaction()`` block sees no
    interleaved statements from other threads. Calls block: from async code, prefer a worker thread.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_ms: int = 5000,
        migrations_dir: Traversable | None = None,
    ) -> None:
        self.path = str(path)
        self._migrations_dir = migrations_dir if migrations_dir is not None else package_migrations()
        self._migrations: list[Migration] | None = None
        self._lock = threading.RLock()
        if self.path != MEMORY and not Path(self.path).exists():
            try:
                _create_private_file(Path(self.path))
            except FileExistsError:
                pass  # another process created it between the check and the open: fine
            except OSError as e:
                raise MetaError(f"cannot create the metadata database {self.path}: {e.strerror}") from None
        try:
            self._conn = apsw.Connection(self.path)
        except apsw.Error as e:
            raise MetaError(f"cannot open the metadata database {self.path}: {e}") from None
        try:
            # The first PRAGMA is what actually reads the file, so a non-database fails here.
            self._configure(busy_timeout_ms)
        except apsw.Error as e:
            self._conn.close()
            raise MetaError(f"cannot open the metadata database {self.path}: {e}") from None

    def _configure(self, busy_timeout_ms: int) -> None:
        conn = self._conn
        # Wait for other writers (the CLI next to a running server) instead of failing at once.
        conn.set_busy_timeout(busy_timeout_ms)
        # Double-quoted strings silently become string literals when a column name is mistyped.
        conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
        conn.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
        # WAL lets readers run during a write; NORMAL is still never corrupt and survives app crashes
        # (reliability.md §3); only a power loss may roll back the last commits.
        conn.pragma("journal_mode", "wal")
        conn.pragma("synchronous", "NORMAL")
        conn.pragma("foreign_keys", "ON")
        conn.pragma("trusted_schema", "OFF")

    # ----------------------------------------------------------------------------------------
    # statements

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        """All rows of one statement. Values bind by name (``:name``), never by formatting."""
        with self._lock:
            return self._conn.execute(sql, params or {}).fetchall()

    def query_one(self, sql: str, params: Params | None = None) -> Row | None:
        with self._lock:
            cursor = self._conn.execute(sql, params or {})
            try:
                row: Row | None = cursor.fetchone()
            finally:
                # An unfinished statement would pin a read snapshot of the WAL until collected.
                cursor.close()
            return row

    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement; returns the rows changed by it (if it is an INSERT, UPDATE or DELETE)."""
        with self._lock:
            self._conn.execute(sql, params or {}).fetchall()
            return self._conn.changes()

    @contextmanager
    def transaction(self) -> Iterator[MetaDB]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on error); nested blocks become savepoints.

        IMMEDIATE takes the write lock up front, so a read-then-write block cannot fail halfway with
        SQLITE_BUSY when another connection wrote in between.
        """
        with self._lock:
            if self._conn.in_transaction:
                with self._conn:  # apsw: a SAVEPOINT, released or rolled back on exit
                    yield self
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                # Some errors (SQLITE_FULL, IOERR) already rolled the transaction back.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    # ----------------------------------------------------------------------------------------
    # migrations

    def available_migrations(self) -> list[Migration]:
        if self._migrations is None:
            self._migrations = load_migrations(self._migrations_dir)
        return self._migrations

    def user_version(self) -> int:
        with self._lock:
            return int(self._conn.pragma("user_version"))

    def migrate(self) -> list[int]:
        """Apply pending migrations, each in its own transaction; returns the versions applied.

        A database that already holds data (version > 0) is first copied to
        ``<file>.bak-v<version>-<UTC timestamp>`` so a failed upgrade can be undone by hand.
        """
        migrations = self.available_migrations()
        latest = migrations[-1].version if migrations else 0
        applied: list[int] = []
        with self._lock:
            current = self.user_version()
            if current > latest:
                raise MetaError(
                    f"the metadata database {self.path} is at schema version {current}, newer than this "
                    f"openpanel-lite knows ({latest}); upgrade openpanel-lite or restore a backup"
                )
            pending = [m for m in migrations if m.version > current]
            if not pending:
                return applied
            if current > 0:
                self.backup(current)
            for migration in pending:
                with self.transaction():
                    # Re-read inside the write lock: another process may have migrated meanwhile.
                    if self.user_version() >= migration.version:
                        continue
                    try:
                        self._conn.execute(migration.sql).fetchall()
                    except apsw.Error as e:
                        raise MetaError(f"migration {migration.name} failed: {e}") from e
                    # PRAGMA takes no bound parameters; the version is an int parsed from a file name.
                    self._conn.execute(f"PRAGMA user_version = {int(migration.version)}")
                applied.append(migration.version)
        return applied

    def backup(self, version: int | None = None) -> Path | None:
        """Copy the database next to itself with VACUUM INTO; returns the copy's path (None for :memory:)."""
        if self.path == MEMORY:
            return None
        with self._lock:
            if version is None:
                version = self.user_version()
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            base = f"{self.path}.bak-v{version}-{stamp}"
            target = Path(base)
            suffix = 1
            while target.exists():
                suffix += 1
                target = Path(f"{base}-{suffix}")
            # Pre-create it 0600 (VACUUM INTO accepts an empty file): the copy holds hashes too.
            _create_private_file(target)
            try:
                self._conn.execute("VACUUM INTO :target", {"target": str(target)})
            except apsw.Error as e:
                target.unlink(missing_ok=True)
                raise MetaError(f"could not back up {self.path} before migrating: {e}") from e
            return target

    # ----------------------------------------------------------------------------------------
    # health and lifetime

    def check(self) -> None:
        """Raise MetaError unless the database answers and is migrated to the latest version."""
        try:
            with self._lock:
                self._conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
                current = self.user_version()
        except apsw.Error as e:
            raise MetaError(f"metadata database {self.path} is unusable: {e}") from None
        migrations = self.available_migrations()
        latest = migrations[-1].version if migrations else 0
        if current != latest:
            raise MetaError(
                f"metadata database {self.path} is at schema version {current}, expected {latest}; "
                "run `openpanel migrate`"
            )

    def journal_mode(self) -> str:
        with self._lock:
            return str(self._conn.pragma("journal_mode"))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> MetaDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
