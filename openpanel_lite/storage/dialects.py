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
)

# CLICKHOUSE = Dialect(name="clickhouse", placeholder="{{{name}:{type}}}",
#     param_types={STRING: "String", FLOAT: "Float64", INT: "Int64", TIMESTAMP: "DateTime64(3, 'UTC')"},
#     count_distinct="uniqExact({expr})", count_distinct_if="uniqExactIf({expr}, {cond})",
#     count_if="countIf({cond})", sum_if="sumIf({expr}, {cond})", to_local_time="toTimeZone({ts}, {tz})",
#     time_bucket={MINUTE: "toStartOfMinute({ts})", …, WEEK: "toStartOfWeek({ts}, 1)", …},
#     map_get="{map}[{key}]", contains_ci="positionCaseInsensitiveUTF8({expr}, {value}) > 0", …)
# goes here with storage/clickhouse.py, and the parity tests that keep it honest.

DIALECTS: dict[str, Dialect] = {"duckdb": DUCKDB}
