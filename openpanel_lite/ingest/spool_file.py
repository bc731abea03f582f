"""The spool's SQLite file: schema, a write and a read connection, and every statement run on them.
Bytes in, bytes out; spool.py owns encoding, queueing and the group-commit thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import apsw

_FORMAT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    -- AUTOINCREMENT: a seq is never reused, even after the top rows are pruned, because the store's
    -- watermark says "everything up to here is stored" and a reused seq would hide new rows from replay.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    body BLOB NOT NULL
);
-- Dedup keys outlive their spool rows (pruned seconds after a checkpoint), so they get their own table.
CREATE TABLE IF NOT EXISTS dedup (
    key TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_expires ON dedup (expires_ms);
-- Records that could not be decoded, kept for a person to look at; never replayed automatically.
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    error TEXT NOT NULL
);
"""

# Inserts a new key, or revives an expired one that was not yet pruned; RETURNING yields a row only then.
_CLAIM_KEY = """
INSERT INTO dedup (key, expires_ms) VALUES (:key, :expires_ms)
ON CONFLICT (key) DO UPDATE SET expires_ms = excluded.expires_ms WHERE dedup.expires_ms <= :now_ms
RETURNING 1
"""
_INSERT = "INSERT INTO spool (created_ms, body) VALUES (:created_ms, :body) RETURNING seq"
_MAX_SEQ = (1 << 63) - 1


class SpoolError(Exception):
    """The spool could not commit or read; the request was not accepted."""


class Entry(NamedTuple):
    """One record to commit: its encoded body, its dedup key (or None) and that key's window."""

    body: bytes
    dedup_key: str | None
    window_ms: int


def _yield_lock() -> None:
    """Pause between maintenance chunks so the group-commit thread gets the write lock.

    threading.Lock is not fair: a loop that re-acquires at once can starve the commit thread,
    which holds up every /track answer (seen as 0.5-1 s p99 spikes at each checkpoint+prune).
    """
    time.sleep(0.002)


def _fetch(conn: apsw.Connection, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params or {}).fetchall()


class SpoolFile:
    """Thread-safe: writes share one connection under a lock, reads another, so replay pages never
    wait behind a commit. `rows` and `body_bytes` track what the file holds, for the size caps."""

    def __init__(self, path: Path, synchronous: str) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.path = path
        if not path.exists():
            # Owner-only, like the metadata DB: the rows carry user data. -wal/-shm inherit the mode.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self._wconn = self._connect(synchronous)
        self._rconn = self._connect(synchronous)
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._migrate()
        count, total = _fetch(self._wconn, "SELECT count(*), total(length(body)) FROM spool")[0]
        self.rows = int(count)
        self.body_bytes = int(total)

    def _connect(self, synchronous: str) -> apsw.Connection:
        try:
            conn = apsw.Connection(str(self.path))
        except apsw.Error as e:
            raise SpoolError(f"cannot open the spool {self.path}: {e}") from None
        conn.set_busy_timeout(5000)
        conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
        conn.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
        # Must precede the first table: lets prune hand freed pages back to the file system.
        conn.pragma("auto_vacuum", "INCREMENTAL")
        conn.pragma("journal_mode", "wal")
        # FULL fsyncs the WAL at every commit (survives power loss); NORMAL survives kill -9 only.
        conn.pragma("synchronous", synchronous)
        # Keep the -wal file from staying huge after a burst.
        conn.pragma("journal_size_limit", 64 * 1024 * 1024)
        conn.pragma("trusted_schema", "OFF")
        return conn

    def _migrate(self) -> None:
        version = _fetch(self._wconn, "PRAGMA user_version")[0][0]
        if version > _FORMAT_VERSION:
            raise SpoolError(f"the spool {self.path} has format {version}, newer than this version reads")
        with self._wconn:
            self._wconn.execute(_SCHEMA)
            self._wconn.pragma("user_version", _FORMAT_VERSION)

    def synchronous(self) -> int:
        """The write connection's PRAGMA synchronous (2 = FULL, 1 = NORMAL)."""
        with self._wlock:
            return int(_fetch(self._wconn, "PRAGMA synchronous")[0][0])

    # ----------------------------------------------------------------------------------------
    # writes

    def commit(self, entries: Sequence[Entry], now_ms: int) -> list[int | None]:
        """One transaction for all entries: each gets its seq, or None when its key is taken.

        Raises apsw.Error with nothing committed.
        """
        outcomes: list[int | None] = []
        conn = self._wconn
        with self._wlock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                added = 0
                for entry in entries:
                    if entry.dedup_key is not None:
                        claim = {
                            "key": entry.dedup_key,
                            "expires_ms": now_ms + entry.window_ms,
                            "now_ms": now_ms,
                        }
                        if not _fetch(conn, _CLAIM_KEY, claim):
                            outcomes.append(None)
                            continue
                    seq = int(_fetch(conn, _INSERT, {"created_ms": now_ms, "body": entry.body})[0][0])
                    outcomes.append(seq)
                    added += len(entry.body)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    # SQLite may have rolled back already (e.g. after SQLITE_FULL).
                    with contextlib.suppress(apsw.Error):
                        conn.execute("ROLLBACK")
                raise
            self.rows += sum(1 for o in outcomes if o is not None)
            self.body_bytes += added
        return outcomes

    def prune(self, upto_seq: int, chunk: int) -> int:
        """Delete records with seq <= upto_seq, a chunk per transaction; returns how many went."""
        removed = 0
        while True:
            with self._wlock:
                first = _fetch(self._wconn, "SELECT min(seq) FROM spool")[0][0]
                if first is None or first > upto_seq:
                    break
                span = {"lo": first, "hi": min(upto_seq, first + chunk - 1)}
                with self._wconn:
                    count, total = _fetch(
                        self._wconn,
                        "SELECT count(*), total(length(body)) FROM spool WHERE seq BETWEEN :lo AND :hi",
                        span,
                    )[0]
                    self._wconn.execute("DELETE FROM spool WHERE seq BETWEEN :lo AND :hi", span)
                self.rows -= int(count)
                self.body_bytes -= int(total)
                removed += int(count)
            _yield_lock()
        if removed:
            self._shrink()
        return removed

    def _shrink(self) -> None:
        # Return free pages once they are a quarter of the file, a few MiB per lock hold.
        while True:
            with self._wlock:
                pages = _fetch(self._wconn, "PRAGMA page_count")[0][0]
                free = _fetch(self._wconn, "PRAGMA freelist_count")[0][0]
                if free < 256 or free * 4 < pages:
                    return
                self._wconn.execute("PRAGMA incremental_vacuum(2048)").fetchall()
            _yield_lock()

    def prune_dedup(self, now_ms: int, chunk: int) -> int:
        """Forget dedup keys whose window has passed; returns how many."""
        removed = 0
        while True:
            with self._wlock, self._wconn:
                self._wconn.execute(
                    "DELETE FROM dedup WHERE key IN "
                    "(SELECT key FROM dedup WHERE expires_ms <= :now LIMIT :n)",
                    {"now": now_ms, "n": chunk},
                )
                gone = self._wconn.changes()
            removed += gone
            if gone < chunk:
                return removed
            _yield_lock()

    def ensure_seq_above(self, seq: int) -> bool:
        """Make the next seq greater than `seq`; True when that moved it."""
        with self._wlock, self._wconn:
            self._wconn.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'spool', :seq "
                "WHERE :seq > 0 AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'spool')",
                {"seq": seq},
            )
            moved = self._wconn.changes() > 0
            if not moved:
                self._wconn.execute(
                    "UPDATE sqlite_sequence SET seq = :seq WHERE name = 'spool' AND seq < :seq", {"seq": seq}
                )
                moved = self._wconn.changes() > 0
        return moved

    def dead_letter(self, seq: int, error: str) -> None:
        """Copy record `seq` aside, byte for byte; it stays in the spool until pruned."""
        with self._wlock, self._wconn:
            self._wconn.execute(
                "INSERT OR IGNORE INTO dead_letters (seq, created_ms, body, error) "
                "SELECT seq, created_ms, body, :error FROM spool WHERE seq = :seq",
                {"seq": seq, "error": error},
            )

    def replace_bodies(self, bodies: Sequence[tuple[int, bytes]]) -> None:
        """Overwrite the bodies of existing records (seq kept) in one transaction (GDPR erase)."""
        with self._wlock, self._wconn:
            for seq, body in bodies:
                self._wconn.execute(
                    "UPDATE spool SET body = :body WHERE seq = :seq", {"seq": seq, "body": body}
                )
            count, total = _fetch(self._wconn, "SELECT count(*), total(length(body)) FROM spool")[0]
            self.rows = int(count)
            self.body_bytes = int(total)

    def drop_dead_letters_containing(self, needle: bytes) -> int:
        """Delete set-aside records whose raw bytes contain `needle` (they cannot be decoded to filter)."""
        with self._wlock, self._wconn:
            self._wconn.execute("DELETE FROM dead_letters WHERE instr(body, :needle) > 0", {"needle": needle})
            removed = int(self._wconn.changes())
        return removed

    def compact(self, attempts: int = 50) -> None:
        """Rebuild the file (VACUUM) and empty the WAL, so no old page keeps an overwritten value."""
        with self._wlock:
            self._wconn.execute("VACUUM")
            for _ in range(attempts):
                # TRUNCATE needs a moment with no reader inside the WAL; reads here are short.
                busy = _fetch(self._wconn, "PRAGMA wal_checkpoint(TRUNCATE)")[0][0]
                if not busy:
                    return
                time.sleep(0.02)
        raise SpoolError("the spool's WAL could not be truncated: a reader kept it busy")

    # ----------------------------------------------------------------------------------------
    # reads

    def read_after(self, after_seq: int, upto_seq: int | None, limit: int) -> list[tuple[int, bytes]]:
        with self._rlock:
            rows = _fetch(
                self._rconn,
                "SELECT seq, body FROM spool WHERE seq > :after AND seq <= :upto ORDER BY seq LIMIT :n",
                {"after": after_seq, "upto": _MAX_SEQ if upto_seq is None else upto_seq, "n": limit},
            )
        return [(int(seq), bytes(body)) for seq, body in rows]

    def last_seq(self) -> int:
        """The highest seq ever given out (0 for a new spool), pruned or not."""
        with self._rlock:
            rows = _fetch(self._rconn, "SELECT seq FROM sqlite_sequence WHERE name = 'spool'")
        return int(rows[0][0]) if rows else 0

    def dead_letter_count(self) -> int:
        with self._rlock:
            return int(_fetch(self._rconn, "SELECT count(*) FROM dead_letters")[0][0])

    def size(self) -> int:
        """Bytes on disk: the database file plus its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += os.path.getsize(f"{self.path}{suffix}")
        return total

    def close(self) -> None:
        with self._wlock, self._rlock:
            self._rconn.close()
            self._wconn.close()
