"""The ClickHouse event store's DDL, generated from storage/columns.py (so the types are written once)
for a single server or for a cluster, and the ordered migrations that create it.

Single server: each table is a MergeTree-family table under its own name (seed §3.2, openpanel-facts
§3.14). Cluster (`[storage.clickhouse] cluster = "name"`, seed §4.2): every statement runs
`ON CLUSTER`, the data lives in Replicated*MergeTree `<table>_local` tables on every node, and
`<table>` is a Distributed front table over them, so reports read and write the same names either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from openpanel_lite.storage.columns import TABLES

# The spool batch a row came with (0: not from the spool, e.g. migrate-events). Not a column of
# storage/columns.py: only the ClickHouse store reads it, to remove a partly written batch whose
# replay comes back with a different range (storage/clickhouse.py).
BATCH_COLUMN: Final = "_spool_batch"

# Inserts repeated with the same insert_deduplication_token are dropped within this many blocks;
# plain MergeTree keeps no such log unless the table asks for one.
DEDUP_WINDOW: Final = 10_000


@dataclass(frozen=True, slots=True)
class Engine:
    """A MergeTree-family engine: `name(args)` on one server, Replicated`name`(path, replica, args)."""

    name: str
    args: str = ""
    partition_by: str = ""
    order_by: str = ""


ENGINES: dict[str, Engine] = {
    # Append-only; read in (project, day, time) ranges, upstream's key (openpanel-facts §3.14).
    "events": Engine(
        "MergeTree", "", "toYYYYMM(created_at)", "(project_id, toDate(created_at), created_at, name)"
    ),
    # The newest last_seen_at per (project_id, id) survives merges; reads pick it explicitly too.
    "profiles": Engine("ReplacingMergeTree", "last_seen_at", "", "(project_id, id)"),
    # Versioned rows (sign, version): merges drop cancelled pairs, reads sum(sign) meanwhile.
    "sessions": Engine(
        "VersionedCollapsingMergeTree", "sign, version", "toYYYYMM(created_at)", "(project_id, id)"
    ),
    "groups": Engine("ReplacingMergeTree", "version, deleted", "", "(project_id, id)"),
    "events_bots": Engine("MergeTree", "", "toYYYYMM(created_at)", "(project_id, created_at)"),
    # Signed time-on-page rows; read summed by page over a range, never collapsed by merges.
    "view_durations": Engine(
        "MergeTree", "", "toYYYYMM(created_at)", "(project_id, toDate(created_at), origin, path)"
    ),
    # Signed Pages rows; read summed by page over a range.
    "page_views": Engine(
        "MergeTree", "", "toYYYYMM(created_at)", "(project_id, toDate(created_at), origin, path)"
    ),
}
# Migration 1's tables; later tables come with migrations of their own.
_FIRST_TABLES: Final = ("events", "profiles", "sessions", "groups", "events_bots")

# Bookkeeping tables (not in columns.py): one row per node per written batch, the spool batches a
# node has started, and the applied migrations.
_BOOKKEEPING: dict[str, tuple[str, Engine]] = {
    "_spool_watermark": (
        "node String, watermark UInt64, written_at DateTime64(3, 'UTC')",
        Engine("MergeTree", "", "", "(node, watermark)"),
    ),
    "_spool_batches": (
        "node String, first UInt64, last UInt64, attempt String, started_at DateTime64(3, 'UTC')",
        Engine("MergeTree", "", "", "(node, last, attempt)"),
    ),
}
MIGRATIONS_TABLE: Final = "_migrations"
MIGRATIONS_COLUMNS: Final = "version UInt32, name String, applied_at DateTime64(3, 'UTC')"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the DDL goes: a database, optionally on a cluster."""

    database: str
    cluster: str = ""

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {quote(self.cluster)}" if self.cluster else ""

    def engine(self, table: str, engine: Engine) -> str:
        if not self.cluster:
            sql = f"{engine.name}({engine.args})"
        else:
            # {shard} and {replica} are the server's macros; the path is unique per database and table.
            path = f"'/clickhouse/tables/{{shard}}/{self.database}/{table}_local'"
            args = ", ".join(a for a in (path, "'{replica}'", engine.args) if a)
            sql = f"Replicated{engine.name}({args})"
        if engine.partition_by:
            sql += f"\nPARTITION BY {engine.partition_by}"
        sql += f"\nORDER BY {engine.order_by or 'tuple()'}"
        return sql

    def data_table(self, table: str) -> str:
        """The table that holds the rows: `<table>_local` on a cluster (DELETE/UPDATE go there)."""
        return f"{table}_local" if self.cluster else table


def quote(identifier: str) -> str:
    """A backquoted identifier; names come from config or fixed tables, never from requests."""
    return "`" + identifier.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _column_list(table: str) -> str:
    cols = [f"    {quote(c.name)} {c.clickhouse_type}" for c in TABLES[table]]
    return ",\n".join(cols)


def _create(layout: Layout, table: str, columns: str, engine: Engine, settings: str = "") -> list[str]:
    """CREATE statements for one table: itself, or its _local table plus a Distributed front."""
    tail = f"\nSETTINGS {settings}" if settings else ""
    if not layout.cluster:
        return [
            f"CREATE TABLE IF NOT EXISTS {quote(table)}\n(\n{columns}\n)\n"
            f"ENGINE = {layout.engine(table, engine)}{tail}"
        ]
    local = f"{table}_local"
    return [
        f"CREATE TABLE IF NOT EXISTS {quote(local)}{layout.on_cluster}\n(\n{columns}\n)\n"
        f"ENGINE = {layout.engine(table, engine)}{tail}",
        # rand(): any shard may hold any row; every report aggregates across all of them.
        f"CREATE TABLE IF NOT EXISTS {quote(table)}{layout.on_cluster} AS {quote(local)}\n"
        f"ENGINE = Distributed({quote(layout.cluster)}, {quote(layout.database)}, {quote(local)}, rand())",
    ]


def migrations_table(layout: Layout) -> list[str]:
    return _create(layout, MIGRATIONS_TABLE, MIGRATIONS_COLUMNS, Engine("MergeTree", "", "", "version"))


def _data_table(layout: Layout, table: str) -> list[str]:
    columns = _column_list(table) + f",\n    {quote(BATCH_COLUMN)} UInt64 DEFAULT 0"
    window = f"non_replicated_deduplication_window = {DEDUP_WINDOW}"
    settings = window if not layout.cluster else f"replicated_deduplication_window = {DEDUP_WINDOW}"
    return _create(layout, table, columns, ENGINES[table], settings)


def _tables(layout: Layout) -> list[str]:
    out: list[str] = []
    for table in _FIRST_TABLES:
        out += _data_table(layout, table)
    for table, (columns, engine) in _BOOKKEEPING.items():
        out += _create(layout, table, "    " + columns.replace(", ", ",\n    "), engine)
    return out


# The seed's daily and hourly roll-ups (§3.2), as AggregatingMergeTree states: summing uniq() counts
# across inserts would overcount, merging uniqExact states does not. Filled on insert into events.
_ROLLUPS: dict[str, tuple[str, str]] = {
    "daily_metrics": ("toDate(created_at)", "date Date"),
    "hourly_metrics": ("toStartOfHour(created_at)", "hour DateTime('UTC')"),
}


def _rollups(layout: Layout) -> list[str]:
    out: list[str] = []
    for view, (bucket, bucket_column) in _ROLLUPS.items():
        bucket_name = bucket_column.split()[0]
        columns = (
            f"    project_id String,\n    {bucket_column},\n"
            "    visitors AggregateFunction(uniqExact, String),\n"
            "    sessions AggregateFunction(uniqExact, String),\n"
            "    screen_views SimpleAggregateFunction(sum, UInt64),\n"
            "    events SimpleAggregateFunction(sum, UInt64)"
        )
        store = f"{view}_data"
        engine = Engine(
            "AggregatingMergeTree", "", f"toYYYYMM({bucket_name})", f"(project_id, {bucket_name})"
        )
        out += _create(layout, store, columns, engine)
        # On a cluster the view sits on every node's events_local and writes its local roll-up.
        source, target = layout.data_table("events"), layout.data_table(store)
        out.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {quote(view)}{layout.on_cluster} TO {quote(target)} AS\n"
            f"SELECT project_id, {bucket} AS {bucket_name},\n"
            "    uniqExactState(profile_id) AS visitors, uniqExactState(session_id) AS sessions,\n"
            "    toUInt64(countIf(name = 'screen_view')) AS screen_views,\n"
            "    toUInt64(countIf(name NOT IN ('session_start', 'session_end'))) AS events\n"
            f"FROM {quote(source)} GROUP BY project_id, {bucket_name}"
        )
    return out


def _backfilled(layout: Layout, table: str, select: str) -> list[str]:
    """A table added after events were stored, created and filled from them by `select` (its columns
    in storage/columns.py order), as ingest fills it now."""
    cols = ", ".join(quote(c.name) for c in TABLES[table])
    # Emptied first so that a migration cut short between the insert and its record runs again cleanly
    # (it runs before ingest starts, so the table holds nothing else).
    empty = f"TRUNCATE TABLE IF EXISTS {quote(layout.data_table(table))}{layout.on_cluster}"
    return [*_data_table(layout, table), empty, f"INSERT INTO {quote(table)} ({cols})\n{select}"]


def _view_durations(layout: Layout) -> list[str]:
    """The time-on-page table: each stored view's time to the first later view of its session (views
    at the same millisecond share it)."""
    return _backfilled(
        layout,
        "view_durations",
        "SELECT project_id, session_id, origin, path, created_at, toUInt64(next_ms - at_ms), toInt8(1)\n"
        "FROM (\n"
        "    SELECT project_id, session_id, origin, path, created_at,\n"
        "        toUnixTimestamp64Milli(created_at) AS at_ms,\n"
        "        min(at_ms) OVER (PARTITION BY project_id, session_id ORDER BY at_ms\n"
        "            RANGE BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS next_ms\n"
        "    FROM events WHERE name = 'screen_view' AND session_id != ''\n"
        ") WHERE next_ms IS NOT NULL AND next_ms > at_ms",
    )


def _page_views(layout: Layout) -> list[str]:
    """The Pages views table: each stored view's previous view of the same page in its session
    (lagInFrame's default for the first one is the epoch, the same 'none' ingest writes)."""
    return _backfilled(
        layout,
        "page_views",
        "SELECT project_id, session_id, profile_id, origin, path, created_at,\n"
        "    if(session_id = '', toDateTime64(0, 3, 'UTC'), lagInFrame(created_at) OVER (\n"
        "        PARTITION BY project_id, session_id, origin, path ORDER BY created_at\n"
        "        ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)),\n"
        "    toInt8(1)\n"
        "FROM events WHERE name = 'screen_view'",
    )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Layout], list[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tables", _tables),
    Migration(2, "daily_hourly_rollups", _rollups),
    Migration(3, "view_durations", _view_durations),
    Migration(4, "page_views", _page_views),
)
