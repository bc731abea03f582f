"""The SQL fragments that differ between event-store backends; storage/sql.py writes everything else
once. Each fragment is a str.format template whose slots are filled with generated SQL, never input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from openpanel_lite.query import Interval


class ParamKind(StrEnum):
    """A bound value's type; ClickHouse placeholders must spell it, DuckDB infers it."""

    STRING = "string"
    FLOAT = "float"
    INT = "int"
    TIMESTAMP = "timestamp"
    UUID = "uuid"


@dataclass(frozen=True, slots=True)
class Dialect:
    name: Literal["duckdb", "clickhouse"]
    # Slots: {name} and {type} (the entry of param_types for the value's ParamKind).
    placeholder: str
    param_types: MappingProxyType[ParamKind, str]
    # Exact distinct counts only: approximate ones are off by several % (stack-notes §4).
    count_distinct: str  # {expr}
    count_distinct_if: str  # {expr} {cond}
    count_if: str  # {cond}
    sum_if: str  # {expr} {cond}
    # A UTC timestamp column as wall-clock time in the zone bound at {tz}.
    to_local_time: str  # {ts} {tz}
    time_bucket: MappingProxyType[Interval, str]  # {ts}: local time -> start of its bucket
    # A map value, '' when the key is absent (ClickHouse's behaviour, so both agree).
    map_get: str  # {map} {key}
    contains_ci: str  # {expr} {value}
    starts_with_ci: str  # {expr} {value}
    ends_with_ci: str  # {expr} {value}
    regex_match: str  # {expr} {value}
    # A string as a number, NULL when it is not one.
    to_number: str  # {expr}
    # Round half away from zero to {digits} places (DuckDB's round; ClickHouse's rounds half to even).
    round: str  # {expr} {digits}
    # A UUID column as a sort key that orders like its text (ClickHouse sorts UUIDs by their halves).
    uuid_order: str  # {expr}

    def param(self, name: str, kind: ParamKind) -> str:
        return self.placeholder.format(name=name, type=self.param_types[kind])


DUCKDB = Dialect(
    name="duckdb",
    placeholder="${name}",
    param_types=MappingProxyType({k: "" for k in ParamKind}),
    count_distinct="count(DISTINCT {expr})",
    count_distinct_if="count(DISTINCT {expr}) FILTER (WHERE {cond})",
    count_if="count(*) FILTER (WHERE {cond})",
    sum_if="sum({expr}) FILTER (WHERE {cond})",
    # timezone('UTC', ts) reads the naive column as UTC (-> TIMESTAMPTZ); timezone(tz, …) then
    # gives the wall-clock time there. ICU is built into the wheel and still loads after lockdown.
    to_local_time="timezone({tz}, timezone('UTC', {ts}))",
    time_bucket=MappingProxyType(
        {
            Interval.MINUTE: "date_trunc('minute', {ts})",
            Interval.HOUR: "date_trunc('hour', {ts})",
            Interval.DAY: "date_trunc('day', {ts})",
            # ISO weeks: Monday, like ClickHouse toStartOfWeek(…, 1).
            Interval.WEEK: "date_trunc('week', {ts})",
            Interval.MONTH: "date_trunc('month', {ts})",
        }
    ),
    map_get="coalesce({map}[{key}], '')",
    contains_ci="contains(lower({expr}), lower({value}))",
    starts_with_ci="starts_with(lower({expr}), lower({value}))",
    ends_with_ci="ends_with(lower({expr}), lower({value}))",
    regex_match="regexp_matches({expr}, {value})",
    to_number="TRY_CAST({expr} AS DOUBLE)",
    round="round({expr}, {digits})",
    uuid_order="{expr}",
)

# Results come back as naive datetimes holding the bucket's wall-clock time, as DuckDB's do: the
# ClickHouse store reads every DateTime as UTC, so local buckets are rebuilt as 'UTC' values from
# their calendar fields (toDate/toHour/toMinute read them in the zone of their argument).
_CH_DAY = "toDateTime(toDate({ts}), 'UTC')"
CLICKHOUSE = Dialect(
    name="clickhouse",
    placeholder="{{{name}:{type}}}",
    param_types=MappingProxyType(
        {
            ParamKind.STRING: "String",
            ParamKind.FLOAT: "Float64",
            ParamKind.INT: "Int64",
            ParamKind.TIMESTAMP: "DateTime64(3, 'UTC')",
            ParamKind.UUID: "UUID",
        }
    ),
    count_distinct="uniqExact({expr})",
    count_distinct_if="uniqExactIf({expr}, {cond})",
    count_if="countIf({cond})",
    sum_if="sumIf({expr}, {cond})",
    to_local_time="toTimeZone({ts}, {tz})",
    time_bucket=MappingProxyType(
        {
            Interval.MINUTE: _CH_DAY + " + toHour({ts}) * 3600 + toMinute({ts}) * 60",
            Interval.HOUR: _CH_DAY + " + toHour({ts}) * 3600",
            Interval.DAY: _CH_DAY,
            Interval.WEEK: "toDateTime(toStartOfWeek({ts}, 1), 'UTC')",
            Interval.MONTH: "toDateTime(toStartOfMonth({ts}), 'UTC')",
        }
    ),
    map_get="{map}[{key}]",
    contains_ci="positionUTF8(lowerUTF8({expr}), lowerUTF8({value})) > 0",
    starts_with_ci="startsWith(lowerUTF8({expr}), lowerUTF8({value}))",
    ends_with_ci="endsWith(lowerUTF8({expr}), lowerUTF8({value}))",
    # RE2 and a search (not a full match) in both engines.
    regex_match="match({expr}, {value})",
    # DuckDB's cast trims surrounding spaces; toFloat64OrNull does not.
    to_number="toFloat64OrNull(trimBoth({expr}))",
    # floor(x + 0.5) is half away from zero for x >= 0; sign() carries negative values over.
    round="(sign({expr}) * floor(abs({expr}) * pow(10, {digits}) + 0.5) / pow(10, {digits}))",
    uuid_order="toString({expr})",
)

DIALECTS: dict[str, Dialect] = {"duckdb": DUCKDB, "clickhouse": CLICKHOUSE}
