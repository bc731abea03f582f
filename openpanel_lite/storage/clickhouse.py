"""ClickHouseStore: the event store on a ClickHouse server or cluster, through clickhouse-connect
(HTTP; `chdb://path` runs the same engine in-process). Reports run unchanged on it: they compile to
the CLICKHOUSE dialect, and reads use SQL-standard settings (join_use_nulls,
aggregate_functions_null_for_empty) so NULLs and empty aggregates come back as DuckDB's do.

Batches without a multi-table transaction
-----------------------------------------
The ingest writer needs append() to be all or nothing with the spool watermark, and replays the spool
from watermark() after a crash. ClickHouse has no transaction across tables, so each batch is written
as a sequence of idempotent steps, the watermark last:

1. A row in `_spool_batches` (node, first, last, attempt) says this node started writing the spool
   range (first, last]; `attempt` is a random id that also tags every row of the batch
   (`_spool_batch` column).
2. One insert per table, each with `insert_deduplication_token = node:first-last:attempt:table`. A
   retried insert (a timeout after the server applied it, a 5xx, a dropped connection) carries the same
   token and ClickHouse drops it as a duplicate block: a retry never doubles. Retries back off
   exponentially.
3. Profile links: one synchronous UPDATE mutation; setting the same profile id twice is harmless.
4. A `_spool_watermark` row (node, last). Only now does watermark() move.

After a crash between 1 and 4 the batch is partly applied and the watermark still says `first`. On the
next append the store compares the replayed batch with the started one: the same range reuses the
same attempt, so the tokens drop whatever had already landed and insert the rest; a different range
(the writer may cut its catch-up batches differently) first deletes the rows tagged with the old
attempt, then writes the new batch under a new attempt. Either way no row is stored twice.

Until the replay completes, reads may see part of the batch (say its events but not its sessions): the
rows they see are real and never doubled; session metrics aggregate versioned rows with sum(sign), so
a missing version pair changes nothing, and the next flush completes the picture. Each node keeps its
own watermark (`storage.clickhouse.node`), since each openpanel-lite node has its own spool.
"""

from __future__ import annotations

import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import clickhouse_connect
import msgspec
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from openpanel_lite.storage import StoreError
from openpanel_lite.storage.clickhouse_schema import (
    BATCH_COLUMN,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    Layout,
    migrations_table,
    quote,
)
from openpanel_lite.storage.columns import TABLES, column_names
from openpanel_lite.storage.dialects import CLICKHOUSE, Dialect
from openpanel_lite.storage.rows import ProfileLink, WriteBatch

T = TypeVar("T")

# Reads: NULL for outer-join misses and for sum/min/max over no rows, as DuckDB and SQL have it.
READ_SETTINGS: Final[dict[str, Any]] = {"join_use_nulls": 1, "aggregate_functions_null_for_empty": 1}
_MUTATION: Final[dict[str, Any]] = {"mutations_sync": 2}
RETRIES: Final = 5
_TS: Final = "DateTime64(3, 'UTC')"
_BOOK_TYPES: Final[dict[str, list[str]]] = {
    "_spool_batches": ["String", "UInt64", "UInt64", "String", _TS],
    "_spool_watermark": ["String", "UInt64", _TS],
    MIGRATIONS_TABLE: ["UInt32", "String", _TS],
}
_BACKOFF_S: Final = 0.2


def _aware(value: Any) -> Any:
    # clickhouse-connect writes naive datetimes in the local zone; the store's rows are UTC.
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _naive(value: Any) -> Any:
    # Reads return naive UTC datetimes, like DuckDB's TIMESTAMP columns.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _transient(e: BaseException) -> bool:
    """Worth retrying: the connection failed or the server is overloaded, not a bad statement."""
    if isinstance(e, OperationalError):
        return True
    text = str(e)
    # TOO_MANY_SIMULTANEOUS_QUERIES, TIMEOUT_EXCEEDED, NETWORK_ERROR, SOCKET_TIMEOUT, KEEPER_EXCEPTION
    return isinstance(e, DatabaseError) and any(
        f"Code: {code}." in text for code in (202, 159, 210, 209, 999)
    )


def connect(url: str, *, user: str = "default", password: str = "", database: str = "") -> Client:
    """A clickhouse-connect client for `http(s)://host:port` or `chdb://path` (in-process)."""
    if url.startswith("chdb://"):
        client = clickhouse_connect.get_client(dsn=url, settings=READ_SETTINGS)
    else:
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        client = clickhouse_connect.get_client(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8443 if secure else 8123),
            username=user,
            password=password,
            secure=secure,
            # Readers run in several threads at once: a shared HTTP session would serialise them.
            autogenerate_session_id=False,
            settings=READ_SETTINGS,
            query_retries=0,
        )
    if database:
        client.database = database
    return client


class ClickHouseStore:
    """The EventStore on ClickHouse; see the module docstring for how batches stay whole."""

    dialect: Dialect = CLICKHOUSE

    def __init__(
        self,
        url: str,
        *,
        database: str = "openpanel",
        user: str = "default",
        password: str = "",
        cluster: str = "",
        node: str = "",
        retries: int = RETRIES,
    ) -> None:
        self.url = url
        self.layout = Layout(database, cluster)
        self.node = node or socket.gethostname()
        self.retries = retries
        self._client = connect(url, user=user, password=password)
        try:
            self._retry(
                lambda: self._client.command(
                    f"CREATE DATABASE IF NOT EXISTS {quote(database)}{self.layout.on_cluster}"
                )
            )
            self._client.database = database
        except BaseException:
            self._client.close()
            raise
        self._write_lock = threading.Lock()
        self._closed = False
        self._mark = 0
        # The batch this node started and did not finish: (first, last, attempt).
        self._pending: tuple[int, int, int] | None = None
        # Cluster inserts go to every shard before returning, tokens included.
        self._insert_settings: dict[str, Any] = {"deduplicate_blocks_in_dependent_materialized_views": 1}
        if cluster:
            self._insert_settings["distributed_foreground_insert"] = 1

    # ---------------------------------------------------------------- plumbing

    def _retry(self, call: Callable[[], T]) -> T:
        """`call`, retried with exponential backoff and jitter on transient errors."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (ClickHouseError, OSError) as e:
                if attempt == self.retries or not _transient(e):
                    raise
                time.sleep(_BACKOFF_S * 2**attempt * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the ClickHouse store is closed")

    def _command(self, sql: str, params: Mapping[str, object] | None = None, **settings: Any) -> None:
        self._retry(lambda: self._client.command(sql, parameters=dict(params or {}), settings=settings))

    def _insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], token: str) -> None:
        # Known types spare clickhouse-connect a DESCRIBE round trip per insert.
        types = (
            [*(c.clickhouse_type for c in TABLES[table]), "UInt64"] if table in TABLES else _BOOK_TYPES[table]
        )
        settings = {**self._insert_settings, "insert_deduplication_token": token}
        self._retry(
            lambda: self._client.insert(
                table, rows, column_names=list(columns), column_type_names=types, settings=settings
            )
        )

    # ---------------------------------------------------------------- schema

    def migrate(self) -> None:
        with self._write_lock:
            self._check_open()
            for statement in migrations_table(self.layout):
                self._command(statement)
            applied = {int(r[0]) for r in self.fetch(f"SELECT version FROM {MIGRATIONS_TABLE}", {})}
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                # Every statement is IF NOT EXISTS: a migration cut short is simply run again.
                for statement in migration.statements(self.layout):
                    self._command(statement)
                row = [migration.version, migration.name, datetime.now(UTC)]
                self._insert(
                    MIGRATIONS_TABLE, [row], ("version", "name", "applied_at"), f"m{migration.version}"
                )
            self._load_marks()

    def _load_marks(self) -> None:
        node = {"node": self.node}
        self._mark = self.watermark()
        rows = self.fetch(
            "SELECT first, last, attempt FROM _spool_batches WHERE node = {node:String} "
            "ORDER BY started_at DESC, attempt DESC LIMIT 1",
            node,
        )
        self._pending = None
        if rows and int(rows[0][1]) > self._mark:
            self._pending = (int(rows[0][0]), int(rows[0][1]), int(rows[0][2]))

    # ---------------------------------------------------------------- writes

    def append(self, batch: WriteBatch) -> None:
        tables = {t: rows for t, rows in batch.tables().items() if rows}
        mark = batch.spool_watermark
        with self._write_lock:
            self._check_open()
            if mark is None:
                # Rows from outside the spool: no replay to guard against; a retry still dedups.
                self._write_rows(tables, batch.profile_links, secrets.token_hex(8), 0)
                return
            if mark <= self._mark:
                return  # already stored: the watermark covers it
            first = self._mark
            pending = self._pending
            if pending is not None and pending[:2] == (first, mark):
                attempt = pending[2]
            else:
                if pending is not None:
                    self._discard(pending[2])
                attempt = secrets.randbits(62) + 1
                row = [self.node, first, mark, str(attempt), datetime.now(UTC)]
                self._insert(
                    "_spool_batches",
                    [row],
                    ("node", "first", "last", "attempt", "started_at"),
                    f"{self.node}:batch:{first}-{mark}:{attempt}",
                )
                self._pending = (first, mark, attempt)
            self._write_rows(tables, batch.profile_links, f"{self.node}:{first}-{mark}:{attempt}", attempt)
            self._insert(
                "_spool_watermark",
                [[self.node, mark, datetime.now(UTC)]],
                ("node", "watermark", "written_at"),
                f"{self.node}:mark:{mark}:{attempt}",
            )
            self._mark, self._pending = mark, None

    def _write_rows(
        self,
        tables: Mapping[str, Sequence[msgspec.Struct]],
        links: Sequence[ProfileLink],
        token: str,
        tag: int,
    ) -> None:
        for table, structs in tables.items():
            rows = [[*map(_aware, msgspec.structs.astuple(r)), tag] for r in structs]
            self._insert(table, rows, (*column_names(table), BATCH_COLUMN), f"{token}:{table}")
        if links:
            self._link_profiles(links)

    def _link_profiles(self, links: Sequence[ProfileLink]) -> None:
        """The anonymous events of identified visits take the profile id: one mutation per batch."""
        params: dict[str, object] = {}
        cases: list[str] = []
        for i, link in enumerate(links):
            params.update(
                {
                    f"p{i}": link.profile_id,
                    f"j{i}": link.project_id,
                    f"s{i}": link.session_id,
                    f"d{i}": link.device_id,
                    # session_start sits 100 ms before the session's first event.
                    f"a{i}": _naive(link.since) - timedelta(seconds=1),
                    f"b{i}": _naive(link.until),
                }
            )
            cases.append(
                f"project_id = {{j{i}:String}} AND session_id = {{s{i}:String}} AND "
                f"profile_id = {{d{i}:String}} AND created_at >= {{a{i}:DateTime64(3, 'UTC')}} AND "
                f"created_at <= {{b{i}:DateTime64(3, 'UTC')}}"
            )
        value = "multiIf(" + ", ".join(f"{c}, {{p{i}:String}}" for i, c in enumerate(cases)) + ", profile_id)"
        where = " OR ".join(f"({c})" for c in cases)
        table = quote(self.layout.data_table("events"))
        self._command(
            f"ALTER TABLE {table}{self.layout.on_cluster} UPDATE profile_id = {value} WHERE {where}",
            params,
            **_MUTATION,
        )

    def _discard(self, attempt: int) -> None:
        """Delete every row written under `attempt` (a batch cut short whose replay differs)."""
        for table in TABLES:
            data = quote(self.layout.data_table(table))
            self._command(
                f"ALTER TABLE {data}{self.layout.on_cluster} "
                f"DELETE WHERE {quote(BATCH_COLUMN)} = {{a:UInt64}}",
                {"a": attempt},
                **_MUTATION,
            )

    def delete_project(self, project_id: str) -> None:
        with self._write_lock:
            self._check_open()
            for table in TABLES:
                data = quote(self.layout.data_table(table))
                self._command(
                    f"ALTER TABLE {data}{self.layout.on_cluster} DELETE WHERE project_id = {{p:String}}",
                    {"p": project_id},
                    **_MUTATION,
                )

    def erase_profile(self, project_id: str, profile_id: str) -> int:
        """Delete a profile, its events and its sessions (GDPR erase), as DuckDBStore does; returns the
        number of rows deleted. Mutations rewrite the affected parts, so the values are gone from disk."""
        params = {"j": project_id, "p": profile_id}
        with self._write_lock:
            self._check_open()
            # The profile's sessions: those it appears in, in either table (pre-identify page views
            # carry the device id but the session id).
            found = self.fetch(
                "SELECT DISTINCT session_id FROM events WHERE project_id = {j:String} "
                "AND profile_id = {p:String} AND session_id <> '' UNION DISTINCT "
                "SELECT DISTINCT id FROM sessions WHERE project_id = {j:String} AND profile_id = {p:String}",
                params,
            )
            sessions = sorted(str(r[0]) for r in found)
            conditions = {
                "events": "profile_id = {p:String} OR has({s:Array(String)}, session_id)",
                "sessions": "profile_id = {p:String} OR has({s:Array(String)}, id)",
                "profiles": "id = {p:String}",
            }
            all_params = {**params, "s": sessions}
            deleted = 0
            for table, cond in conditions.items():
                where = f"project_id = {{j:String}} AND ({cond})"
                deleted += int(self.fetch(f"SELECT count() FROM {table} WHERE {where}", all_params)[0][0])
                data = quote(self.layout.data_table(table))
                self._command(
                    f"ALTER TABLE {data}{self.layout.on_cluster} DELETE WHERE {where}",
                    all_params,
                    **_MUTATION,
                )
            # Time-on-page rows name no profile, only its sessions (not counted: they are not events).
            where = "project_id = {j:String} AND has({s:Array(String)}, session_id)"
            data = quote(self.layout.data_table("view_durations"))
            self._command(
                f"ALTER TABLE {data}{self.layout.on_cluster} DELETE WHERE {where}", all_params, **_MUTATION
            )
            where = (
                "project_id = {j:String} AND (profile_id = {p:String} OR has({s:Array(String)}, session_id))"
            )
            data = quote(self.layout.data_table("page_views"))
            self._command(
                f"ALTER TABLE {data}{self.layout.on_cluster} DELETE WHERE {where}", all_params, **_MUTATION
            )
            return deleted

    # ---------------------------------------------------------------- bulk copy (migrate-events)

    def insert_rows(self, table: str, rows: Sequence[Sequence[Any]], token: str) -> None:
        """Rows of `table` in columns.py order, as one deduplicated insert (not from the spool)."""
        with self._write_lock:
            self._check_open()
            data = [[*map(_aware, r), 0] for r in rows]
            self._insert(table, data, (*column_names(table), BATCH_COLUMN), token)

    def delete_where(self, table: str, where: str, params: Mapping[str, object]) -> None:
        """Delete the rows of `table` matching `where` (SQL written by the caller, values bound)."""
        with self._write_lock:
            self._check_open()
            data = quote(self.layout.data_table(table))
            bound = {k: _naive(v) for k, v in params.items()}
            self._command(
                f"ALTER TABLE {data}{self.layout.on_cluster} DELETE WHERE {where}", bound, **_MUTATION
            )

    def set_watermark(self, mark: int) -> None:
        """Record `mark` as this node's spool watermark (a store moved here covers the spool up to it)."""
        with self._write_lock:
            self._check_open()
            row = [self.node, mark, datetime.now(UTC)]
            self._insert(
                "_spool_watermark", [row], ("node", "watermark", "written_at"), f"{self.node}:set:{mark}"
            )
            self._mark = max(self._mark, mark)

    def checkpoint(self) -> None:
        # ClickHouse makes its own parts durable; there is no write-ahead log to fold here.
        self._check_open()

    # ---------------------------------------------------------------- reads

    def fetch(self, sql: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        self._check_open()
        # Naive UTC values are sent as text and read in the placeholder's 'UTC' zone.
        bound = {k: _naive(v) for k, v in params.items()}
        result = self._retry(lambda: self._client.query(sql, parameters=bound))
        return [tuple(_naive(v) for v in row) for row in result.result_rows]

    def watermark(self) -> int:
        rows = self.fetch(
            "SELECT max(watermark) FROM _spool_watermark WHERE node = {node:String}", {"node": self.node}
        )
        return int(rows[0][0] or 0)

    def check(self) -> None:
        try:
            self.fetch("SELECT count() FROM _spool_watermark", {})
        except (ClickHouseError, OSError, StoreError) as e:
            raise StoreError(f"ClickHouse store at {self.url} is not usable: {e}") from e

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._client.close()

    def __enter__(self) -> ClickHouseStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
