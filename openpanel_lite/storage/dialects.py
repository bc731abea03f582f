"""The SQL fragments that differ between event-store backends; storage/sql.py writes everything else
once. Each fragment is a str.format template whose slots are filled with generated SQL, never input.

Where the two engines' own functions disagree on some input, the fragments pin one meaning down for
both (tests/test_parity_dialects.py holds one case per difference found):
- case-insensitive tests: Unicode lowercase differs for 'İ' and a word-final 'Σ' (fold_case);
- regular expressions: ClickHouse's match() lets '.' match a newline, RE2 and DuckDB do not;
- numbers in strings: DuckDB's cast reads '1_000' and trims tabs, both read 'nan' (to_number);
- timestamps: ClickHouse would cut a bound value to the column's milliseconds (param_types);
- rounding: DuckDB's round() of a double and any float emulation of it part ways at halves, so
  ratios are rounded in integer arithmetic instead (int_div, storage/sql.py _ratio).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

from openpanel_lite.query import Interval


class ParamKind(StrEnum):
    """A bound value's type; ClickHouse placeholders must spell it, DuckDB infers it."""

    STRING = "string"
    FLOAT = "float"
    INT = "int"
    TIMESTAMP = "timestamp"
    UUID = "uuid"


# A plain decimal with optional surrounding spaces; no backslashes, so the literal reads the same in
# both engines (ClickHouse string literals interpret escapes, DuckDB's do not).
NUMBER_PATTERN: Final = "^ *[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)? *$"


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
    # Case-sensitive substring tests.
    contains: str  # {haystack} {needle}
    starts_with: str  # {haystack} {needle}
    ends_with: str  # {haystack} {needle}
    # Lowercase for case-insensitive tests. The engines' Unicode lowercase differs in two places:
    # ClickHouse (ICU, full mapping) lowers 'İ' to 'i' plus a combining dot and a word-final 'Σ' to
    # 'ς'; DuckDB (utf8proc, simple mapping) to 'i' and 'σ'. So 'İ' becomes 'i' before lowering and
    # every 'ς' becomes 'σ' after, as Unicode case folding has it. (Letters new in Unicode 16 lower
    # in ClickHouse only: a known gap, docs/scale-out.md.)
    fold_case: str  # {expr}
    # RE2, a search (not a full match); '.' never matches a newline (RE2's default).
    regex_match: str  # {expr} {value}
    # A string as a number, NULL unless it matches NUMBER_PATTERN ('nan', 'inf', '1_000', '0x10',
    # tabs are not numbers); '1e999' reads as infinity in both.
    to_number: str  # {expr}
    # Integer division truncating towards zero.
    int_div: str  # {a} {b}
    # A UUID column as a sort key that orders like its text (ClickHouse sorts UUIDs by their halves).
    uuid_order: str  # {expr}

    def param(self, name: str, kind: ParamKind) -> str:
        return self.placeholder.format(name=name, type=self.param_types[kind])

    @property
    def contains_ci(self) -> str:  # {expr} {value}
        return self._ci(self.contains)

    @property
    def starts_with_ci(self) -> str:  # {expr} {value}
        return self._ci(self.starts_with)

    @property
    def ends_with_ci(self) -> str:  # {expr} {value}
        return self._ci(self.ends_with)

    def _ci(self, test: str) -> str:
        return test.format(
            haystack=self.fold_case.format(expr="{expr}"), needle=self.fold_case.format(expr="{value}")
        )


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
    contains="contains({haystack}, {needle})",
    starts_with="starts_with({haystack}, {needle})",
    ends_with="ends_with({haystack}, {needle})",
    fold_case="replace(lower({expr}), 'ς', 'σ')",
    regex_match="regexp_matches({expr}, {value})",
    to_number=f"CASE WHEN regexp_matches({{expr}}, '{NUMBER_PATTERN}') THEN TRY_CAST({{expr}} AS DOUBLE) END",
    int_div="({a}) // ({b})",
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
            # Microseconds, as DuckDB compares them: DateTime64(3) would cut a bound such as
            # 12:00:00.123456 to .123 and turn `created_at < end` false for an event at .123.
            ParamKind.TIMESTAMP: "DateTime64(6, 'UTC')",
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
    contains="position({haystack}, {needle}) > 0",
    starts_with="startsWith({haystack}, {needle})",
    ends_with="endsWith({haystack}, {needle})",
    fold_case="replaceAll(lowerUTF8(replaceAll({expr}, 'İ', 'i')), 'ς', 'σ')",
    # match() alone lets '.' match '\n' (ClickHouse sets RE2's dot_nl); '(?-s)' restores RE2's
    # default, and a pattern's own leading '(?s)' still turns it back on, as in DuckDB.
    regex_match="match({expr}, concat('(?-s)', {value}))",
    to_number=f"if(match({{expr}}, '{NUMBER_PATTERN}'), toFloat64OrNull(trimBoth({{expr}})), NULL)",
    int_div="intDiv({a}, {b})",
    uuid_order="toString({expr})",
)

DIALECTS: dict[str, Dialect] = {"duckdb": DUCKDB, "clickhouse": CLICKHOUSE}
