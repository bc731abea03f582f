"""The one place that says which columns each event-store table has and how each type maps to
DuckDB, ClickHouse and Arrow. Schemas, row Structs and the Arrow writer are all checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class LogicalType(StrEnum):
    """A column's meaning, independent of the backend that stores it."""

    UUID = "uuid"
    STRING = "string"
    # Few distinct values (event names, countries): LowCardinality in ClickHouse.
    LOW_CARDINALITY = "low_cardinality"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    INT8 = "int8"
    UINT8 = "uint8"
    UINT32 = "uint32"
    UINT64 = "uint64"
    BOOL = "bool"
    STRING_MAP = "string_map"
    STRING_ARRAY = "string_array"
    # UTC, millisecond precision.
    TIMESTAMP = "timestamp"


@dataclass(frozen=True, slots=True)
class TypeMapping:
    duckdb: str
    clickhouse: str
    arrow: pa.DataType


# NOTE: DuckDB stores timestamps as plain TIMESTAMP (µs) rather than TIMESTAMP_MS: it is the
# native type of every time function (date_trunc, timezone, comparisons with bound datetimes), so
# no per-row cast stands between a range filter and zone-map pruning. Same 8 bytes either way;
# millisecond precision is enforced on the one write path, whose Arrow column is timestamp('ms').
# NOTE: upstream's country is FixedString(2), but that pads '' to '\0\0', which would break
# DuckDB/ClickHouse parity for events without geo; LowCardinality(String) stores the same codes.
TYPES: dict[LogicalType, TypeMapping] = {
    LogicalType.UUID: TypeMapping("UUID", "UUID", pa.uuid()),
    LogicalType.STRING: TypeMapping("VARCHAR", "String", pa.string()),
    LogicalType.LOW_CARDINALITY: TypeMapping("VARCHAR", "LowCardinality(String)", pa.string()),
    LogicalType.FLOAT32: TypeMapping("FLOAT", "Float32", pa.float32()),
    LogicalType.FLOAT64: TypeMapping("DOUBLE", "Float64", pa.float64()),
    LogicalType.INT8: TypeMapping("TINYINT", "Int8", pa.int8()),
    LogicalType.UINT8: TypeMapping("UTINYINT", "UInt8", pa.uint8()),
    LogicalType.UINT32: TypeMapping("UINTEGER", "UInt32", pa.uint32()),
    LogicalType.UINT64: TypeMapping("UBIGINT", "UInt64", pa.uint64()),
    LogicalType.BOOL: TypeMapping("BOOLEAN", "Bool", pa.bool_()),
    LogicalType.STRING_MAP: TypeMapping(
        "MAP(VARCHAR, VARCHAR)", "Map(String, String)", pa.map_(pa.string(), pa.string())
    ),
    LogicalType.STRING_ARRAY: TypeMapping("VARCHAR[]", "Array(String)", pa.list_(pa.string())),
    LogicalType.TIMESTAMP: TypeMapping("TIMESTAMP", "DateTime64(3, 'UTC')", pa.timestamp("ms")),
}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: LogicalType
    nullable: bool = False

    @property
    def duckdb_type(self) -> str:
        return TYPES[self.type].duckdb

    @property
    def clickhouse_type(self) -> str:
        ch = TYPES[self.type].clickhouse
        return f"Nullable({ch})" if self.nullable else ch

    @property
    def arrow_type(self) -> pa.DataType:
        return TYPES[self.type].arrow


def _cols(spec: str, type_: LogicalType = LogicalType.STRING) -> tuple[Column, ...]:
    return tuple(Column(name, type_) for name in spec.split())


_L = LogicalType
_UA_COLUMNS = _cols("os os_version browser browser_version device brand model")

# Ordered as upstream's ClickHouse tables (openpanel-facts §3.14).
EVENTS: tuple[Column, ...] = (
    Column("id", _L.UUID),
    Column("name", _L.LOW_CARDINALITY),
    *_cols("sdk_name sdk_version device_id profile_id project_id session_id"),
    Column("groups", _L.STRING_ARRAY),
    *_cols("path origin referrer referrer_name referrer_type"),
    Column("revenue", _L.UINT64),
    # Milliseconds; only session_end carries one.
    Column("duration", _L.UINT64),
    Column("properties", _L.STRING_MAP),
    Column("created_at", _L.TIMESTAMP),
    Column("country", _L.LOW_CARDINALITY),
    *_cols("city region"),
    Column("longitude", _L.FLOAT32, nullable=True),
    Column("latitude", _L.FLOAT32, nullable=True),
    *_UA_COLUMNS,
    Column("imported_at", _L.TIMESTAMP, nullable=True),
)

# Versioned rows (sign, version) as in upstream's VersionedCollapsingMergeTree: every change adds a
# (-1, v) row cancelling the old state and a (+1, v+1) row; readers aggregate with sum(sign).
SESSIONS: tuple[Column, ...] = (
    *_cols("id project_id profile_id device_id"),
    Column("groups", _L.STRING_ARRAY),
    Column("created_at", _L.TIMESTAMP),
    Column("ended_at", _L.TIMESTAMP),
    Column("is_bounce", _L.BOOL),
    *_cols("entry_origin entry_path exit_origin exit_path"),
    Column("screen_view_count", _L.UINT32),
    Column("revenue", _L.FLOAT64),
    Column("event_count", _L.UINT32),
    # Milliseconds.
    Column("duration", _L.UINT32),
    Column("country", _L.LOW_CARDINALITY),
    *_cols("region city"),
    Column("longitude", _L.FLOAT32, nullable=True),
    Column("latitude", _L.FLOAT32, nullable=True),
    *_cols("device brand model browser browser_version os os_version"),
    *_cols("utm_medium utm_source utm_campaign utm_content utm_term"),
    *_cols("referrer referrer_name referrer_type"),
    Column("sign", _L.INT8),
    Column("version", _L.UINT64),
)

PROFILES: tuple[Column, ...] = (
    Column("id", _L.STRING),
    Column("is_external", _L.BOOL),
    *_cols("first_name last_name email avatar"),
    Column("properties", _L.STRING_MAP),
    Column("project_id", _L.STRING),
    Column("groups", _L.STRING_ARRAY),
    Column("created_at", _L.TIMESTAMP),
    Column("last_seen_at", _L.TIMESTAMP),
)

GROUPS: tuple[Column, ...] = (
    *_cols("id project_id type name"),
    Column("properties", _L.STRING_MAP),
    Column("created_at", _L.TIMESTAMP),
    Column("version", _L.UINT64),
    # ReplacingMergeTree(version, deleted) needs a UInt8 flag.
    Column("deleted", _L.UINT8),
)

EVENTS_BOTS: tuple[Column, ...] = (
    Column("id", _L.UUID),
    *_cols("project_id name type path"),
    Column("created_at", _L.TIMESTAMP),
)

# Time on page (rows.ViewDurationRow): signed rows, aggregated with sum(sign * duration) / sum(sign).
VIEW_DURATIONS: tuple[Column, ...] = (
    *_cols("project_id session_id origin path"),
    Column("created_at", _L.TIMESTAMP),
    Column("duration", _L.UINT64),
    Column("sign", _L.INT8),
)

# The Pages table's views (rows.PageViewRow): signed rows; sessions per page without a distinct count.
PAGE_VIEWS: tuple[Column, ...] = (
    *_cols("project_id session_id profile_id origin path"),
    Column("created_at", _L.TIMESTAMP),
    Column("previous_at", _L.TIMESTAMP),
    Column("sign", _L.INT8),
)

TABLES: dict[str, tuple[Column, ...]] = {
    "events": EVENTS,
    "profiles": PROFILES,
    "sessions": SESSIONS,
    "groups": GROUPS,
    "events_bots": EVENTS_BOTS,
    "view_durations": VIEW_DURATIONS,
    "page_views": PAGE_VIEWS,
}


def column_names(table: str) -> tuple[str, ...]:
    return tuple(c.name for c in TABLES[table])


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in TABLES[table]])
