"""The tables the query compiler (storage/sql.py) reads: how each Dimension, Metric and FilterOperator
is written in SQL for any Dialect. Identifiers in generated SQL come only from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from openpanel_lite.query import Dimension, FilterOperator, Metric, Property
from openpanel_lite.storage.dialects import Dialect, ParamKind

# Grain (query.py): the table a query is answered from (openpanel-facts §3.4).
#
# sessions: when every dimension and filter is a session column, as on the overview. Versioned
# rows are aggregated with sum(sign), so cancelled versions drop out. When forced (Query.grain),
# filters on event-only fields keep the sessions that have a matching event in the range, which is
# how upstream's overview treats a page filter in its top-N tables.
# events: as soon as a dimension or filter needs an event column (name, path, properties …).
# Event metrics count the matching events; bounce rate and session duration come from the
# collapsed sessions those events belong to; filters on session-only columns (entry/exit pages)
# become a semi-join on the session id.


@dataclass(frozen=True, slots=True)
class DimensionSql:
    # A column of `sessions`, of `events` (or an event property); None where it does not exist.
    sessions: str | None
    events: str | Property | None


def _both(column: str) -> DimensionSql:
    return DimensionSql(column, column)


DIMENSIONS: dict[Dimension, DimensionSql] = {
    Dimension.NAME: DimensionSql(None, "name"),
    Dimension.PATH: DimensionSql(None, "path"),
    Dimension.ORIGIN: DimensionSql(None, "origin"),
    Dimension.REFERRER: _both("referrer"),
    Dimension.REFERRER_NAME: _both("referrer_name"),
    Dimension.REFERRER_TYPE: _both("referrer_type"),
    # Events keep UTMs in properties['__query.utm_*'] (openpanel-facts §3.7); sessions in columns.
    Dimension.UTM_SOURCE: DimensionSql("utm_source", Property("__query.utm_source")),
    Dimension.UTM_MEDIUM: DimensionSql("utm_medium", Property("__query.utm_medium")),
    Dimension.UTM_CAMPAIGN: DimensionSql("utm_campaign", Property("__query.utm_campaign")),
    Dimension.UTM_TERM: DimensionSql("utm_term", Property("__query.utm_term")),
    Dimension.UTM_CONTENT: DimensionSql("utm_content", Property("__query.utm_content")),
    Dimension.COUNTRY: _both("country"),
    Dimension.REGION: _both("region"),
    Dimension.CITY: _both("city"),
    Dimension.DEVICE: _both("device"),
    Dimension.BROWSER: _both("browser"),
    Dimension.BROWSER_VERSION: _both("browser_version"),
    Dimension.OS: _both("os"),
    Dimension.OS_VERSION: _both("os_version"),
    Dimension.BRAND: _both("brand"),
    Dimension.MODEL: _both("model"),
    Dimension.ENTRY_PATH: DimensionSql("entry_path", None),
    Dimension.ENTRY_ORIGIN: DimensionSql("entry_origin", None),
    Dimension.EXIT_PATH: DimensionSql("exit_path", None),
    Dimension.EXIT_ORIGIN: DimensionSql("exit_origin", None),
}

_BOUNCED = "CASE WHEN is_bounce THEN 1 ELSE 0 END"


def _ratio(d: Dialect, num: str, den: str) -> str:
    """num / den (integers) rounded half away from zero to 2 places, 0 when den is 0 or NULL.

    Exact integer arithmetic, floor((200·num + den) / (2·den)) / 100, so that both engines return
    the same double. A float round() cannot promise that: DuckDB's round(107 / 40, 2) gives 2.67
    (it rounds the double just below 2.675), a float emulation on ClickHouse 2.68.
    """
    scaled = d.int_div.format(a=f"({num}) * 200 + ({den})", b=f"({den}) * 2")
    return f"CASE WHEN ({den}) > 0 THEN {scaled} / 100 ELSE 0 END"


@dataclass(frozen=True, slots=True)
class MetricSql:
    # Over the session base rows (sign, profile_id, is_bounce, duration, screen_view_count, …);
    # None for a metric that exists only on events (the query then reads events).
    sessions: Callable[[Dialect], str] | None
    # Over the event aggregates e_* and, when `needs_sessions`, the session roll-up s_*.
    events: Callable[[Dialect], str]
    needs_sessions: bool = False
    # Reads e_view_time / e_timed_views, summed from the time-on-page rows of the range's views
    # (storage/rows.py ViewDurationRow) grouped like the events.
    needs_view_durations: bool = False


METRICS: dict[Metric, MetricSql] = {
    Metric.UNIQUE_VISITORS: MetricSql(
        # upstream: uniqIf(profile_id, sign > 0)
        lambda d: d.count_distinct_if.format(expr="profile_id", cond="sign > 0"),
        lambda d: "e_visitors",
    ),
    Metric.SESSIONS: MetricSql(lambda d: "coalesce(sum(sign), 0)", lambda d: "e_sessions"),
    Metric.PAGEVIEWS: MetricSql(
        lambda d: "coalesce(sum(sign * screen_view_count), 0)", lambda d: "e_pageviews"
    ),
    Metric.VIEWS_PER_SESSION: MetricSql(
        lambda d: _ratio(d, "sum(sign * screen_view_count)", "sum(sign)"),
        lambda d: _ratio(d, "e_pageviews", "e_sessions"),
    ),
    Metric.BOUNCE_RATE: MetricSql(
        lambda d: _ratio(d, f"sum(sign * {_BOUNCED}) * 100", "sum(sign)"),
        lambda d: _ratio(d, "s_bounces * 100", "s_sessions"),
        needs_sessions=True,
    ),
    Metric.AVG_SESSION_DURATION: MetricSql(
        # upstream: round(avgIf(duration, duration > 0 AND sign > 0), 2) / 1000; sign-weighted here
        # so that a cancelled version's (+1, -1) pair drops out instead of being averaged in.
        lambda d: (
            _ratio(
                d,
                d.sum_if.format(expr="sign * duration", cond="duration > 0"),
                d.sum_if.format(expr="sign", cond="duration > 0"),
            )
            + " / 1000"
        ),
        lambda d: _ratio(d, "s_duration", "s_timed") + " / 1000",
        needs_sessions=True,
    ),
    Metric.REVENUE: MetricSql(
        lambda d: "CAST(coalesce(sum(sign * revenue), 0) AS DOUBLE)", lambda d: "CAST(e_revenue AS DOUBLE)"
    ),
    Metric.EVENTS: MetricSql(
        # session_start / session_end are not counted by sessions either.
        lambda d: "coalesce(sum(sign * (screen_view_count + event_count)), 0)",
        lambda d: "e_events",
    ),
    Metric.AVG_TIME_ON_PAGE: MetricSql(
        None,
        lambda d: _ratio(d, "e_view_time", "e_timed_views") + " / 1000",
        needs_view_durations=True,
    ),
}

# The event-grain aggregates every metric above is written in.
_EVENT_AGGREGATES: tuple[tuple[str, Callable[[Dialect], str]], ...] = (
    ("e_visitors", lambda d: d.count_distinct.format(expr="nullif(profile_id, '')")),
    ("e_sessions", lambda d: d.count_distinct.format(expr="nullif(session_id, '')")),
    ("e_pageviews", lambda d: d.count_if.format(cond="name = 'screen_view'")),
    (
        "e_revenue",
        lambda d: "coalesce({}, 0)".format(d.sum_if.format(expr="revenue", cond="name = 'revenue'")),
    ),
    ("e_events", lambda d: d.count_if.format(cond="name NOT IN ('session_start', 'session_end')")),
)


def _page_sessions(d: Dialect) -> str:
    # A session viewed the page in the range when one of its views there has no earlier view of the
    # page since the range's start (rows.PageViewRow); views outside sessions are page views only.
    start = d.param("start", ParamKind.TIMESTAMP)
    return f"coalesce(sum(sign * CASE WHEN session_id <> '' AND previous_at < {start} THEN 1 ELSE 0 END), 0)"


# The same aggregates over page_views rows (storage/sql.py _page_base).
_PAGE_AGGREGATES: tuple[tuple[str, Callable[[Dialect], str]], ...] = (
    ("e_sessions", _page_sessions),
    ("e_pageviews", lambda d: "coalesce(sum(sign), 0)"),
)


class ValueKind(StrEnum):
    STRING = "string"  # values compared as strings
    NUMBER = "number"  # values compared as numbers
    NONE = "none"  # values ignored


@dataclass(frozen=True, slots=True)
class OperatorSql:
    # A template with {expr} and {value}; several values are ORed, `negate` wraps them in NOT.
    template: Callable[[Dialect], str]
    kind: ValueKind
    negate: bool = False


FILTER_OPERATORS: dict[FilterOperator, OperatorSql] = {
    FilterOperator.IS: OperatorSql(lambda d: "{expr} = {value}", ValueKind.STRING),
    FilterOperator.IS_NOT: OperatorSql(lambda d: "{expr} = {value}", ValueKind.STRING, negate=True),
    FilterOperator.CONTAINS: OperatorSql(lambda d: d.contains_ci, ValueKind.STRING),
    FilterOperator.DOES_NOT_CONTAIN: OperatorSql(lambda d: d.contains_ci, ValueKind.STRING, negate=True),
    FilterOperator.STARTS_WITH: OperatorSql(lambda d: d.starts_with_ci, ValueKind.STRING),
    FilterOperator.ENDS_WITH: OperatorSql(lambda d: d.ends_with_ci, ValueKind.STRING),
    FilterOperator.REGEX: OperatorSql(lambda d: d.regex_match, ValueKind.STRING),
    # Strings are never NULL in the store (absent properties read as ''), so null means empty.
    FilterOperator.IS_NULL: OperatorSql(lambda d: "{expr} = ''", ValueKind.NONE),
    FilterOperator.IS_NOT_NULL: OperatorSql(lambda d: "{expr} <> ''", ValueKind.NONE),
    FilterOperator.GT: OperatorSql(lambda d: d.to_number + " > {value}", ValueKind.NUMBER),
    FilterOperator.LT: OperatorSql(lambda d: d.to_number + " < {value}", ValueKind.NUMBER),
    FilterOperator.GTE: OperatorSql(lambda d: d.to_number + " >= {value}", ValueKind.NUMBER),
    FilterOperator.LTE: OperatorSql(lambda d: d.to_number + " <= {value}", ValueKind.NUMBER),
}
