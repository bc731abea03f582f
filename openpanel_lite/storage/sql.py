"""Query -> (SQL, named parameters) for any Dialect, from three tables: METRICS, DIMENSIONS and
FILTER_OPERATORS. Every value is bound as a parameter; identifiers come only from these tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from openpanel_lite.query import (
    Dimension,
    Filter,
    FilterOperator,
    FilterValue,
    Grain,
    Metric,
    Property,
    Query,
    QueryError,
)
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
    # The base rows carry view_ms: for a screen_view, the milliseconds to the next screen_view of
    # its session (NULL for the last one), from a window over every screen view of the range.
    needs_next_view: bool = False


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
        needs_next_view=True,
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
    ("e_view_time", lambda d: "sum(view_ms)"),
    ("e_timed_views", lambda d: "count(view_ms)"),
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


# --------------------------------------------------------------------------------------------
# compiler


class _Params:
    """Named parameters, so that no value ever appears in the SQL text."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.values: dict[str, object] = {}
        self._anonymous = 0

    def bind(self, value: object, kind: ParamKind, name: str | None = None) -> str:
        if name is None:
            name = f"p{self._anonymous}"
            self._anonymous += 1
        self.values[name] = value
        return self.dialect.param(name, kind)


def choose_grain(q: Query) -> Grain:
    """q.grain when set, else sessions when every dimension and filter exists there, else events."""
    if q.grain is Grain.SESSIONS:
        for m in q.metrics:
            if METRICS[m].sessions is None:
                raise QueryError(f"metrics: {m} exists on events only and the query reads sessions")
        for dim in q.dimensions:
            if _column(dim, Grain.SESSIONS) is None:
                raise QueryError(f"dimensions: {_name(dim)} is an event field and the query reads sessions")
        return Grain.SESSIONS
    fields = [*q.dimensions, *(f.field for f in q.filters)]
    on_sessions = all(METRICS[m].sessions is not None for m in q.metrics)
    if q.grain is None and on_sessions and all(_column(f, Grain.SESSIONS) is not None for f in fields):
        return Grain.SESSIONS
    for dim in q.dimensions:
        if _column(dim, Grain.EVENTS) is None:
            raise QueryError(
                f"dimensions: {dim} is a session column and cannot be combined with event fields"
            )
    return Grain.EVENTS


def _name(field: Dimension | Property) -> str:
    return field.value if isinstance(field, Dimension) else f"properties.{field.key}"


def result_columns(q: Query) -> tuple[str, ...]:
    """Names for the columns of a compiled query's rows: dimensions, the time bucket, metrics."""
    dims = [d.value if isinstance(d, Dimension) else f"properties.{d.key}" for d in q.dimensions]
    return (*dims, *(["time"] if q.interval else []), *(m.value for m in q.metrics))


def compile_query(q: Query, dialect: Dialect) -> tuple[str, dict[str, object]]:
    """The SQL and parameters answering `q`; rows hold the columns named by result_columns(q)."""
    params = _Params(dialect)
    grain = choose_grain(q)
    dims = [f"d{i}" for i in range(len(q.dimensions))]
    ctes: list[tuple[str, str]] = [("base", _base(q, grain, params))]
    if grain is Grain.EVENTS and any(METRICS[m].needs_sessions for m in q.metrics):
        ctes.append(("session_rollup", _session_rollup(params)))
    order = _order(q)
    source = "base"
    if q.interval is not None and dims and q.limit is not None:
        # Series of the top N dimension values: rank them over the whole range first.
        rank_ctes, rank_select = _aggregate("base", dims, grain, q, "rank_", params.dialect)
        ctes += rank_ctes
        top = (
            f"SELECT {', '.join(dims)} FROM (\n{rank_select}\n) AS ranked\nORDER BY {', '.join(order + dims)}"
        )
        ctes.append(("top_keys", top + _limit(q, params)))
        ctes.append(("base_top", f"SELECT base.* FROM base JOIN top_keys USING ({', '.join(dims)})"))
        source = "base_top"
    keys = dims + (["t"] if q.interval is not None else [])
    agg_ctes, select = _aggregate(source, keys, grain, q, "", params.dialect)
    ctes += agg_ctes
    if q.interval is not None:
        select += f"\nORDER BY {', '.join(keys)}"
    elif dims:
        select += f"\nORDER BY {', '.join(order + dims)}" + _limit(q, params)
    with_clause = ",\n".join(f"{name} AS (\n{body}\n)" for name, body in ctes)
    return f"-- sql\nWITH {with_clause}\n{select}", params.values


def _order(q: Query) -> list[str]:
    """ORDER BY terms for the metrics; ties are then broken by the dimensions (stable pages)."""
    if not q.order:
        return ["m0 DESC"]
    return [f"m{q.metrics.index(o.metric)} {'DESC' if o.descending else 'ASC'}" for o in q.order]


def _limit(q: Query, params: _Params) -> str:
    sql = ""
    if q.limit is not None:
        sql += f"\nLIMIT {params.bind(q.limit, ParamKind.INT, 'limit')}"
    if q.offset:
        sql += f"\nOFFSET {params.bind(q.offset, ParamKind.INT, 'offset')}"
    return sql


def _column(field: Dimension | Property, grain: Grain) -> str | Property | None:
    if isinstance(field, Property):
        return field if grain is Grain.EVENTS else None
    spec = DIMENSIONS[field]
    return spec.sessions if grain is Grain.SESSIONS else spec.events


def _field_sql(field: Dimension | Property, grain: Grain, params: _Params) -> str:
    column = _column(field, grain)
    alias = "s" if grain is Grain.SESSIONS else "e"
    if column is None:
        raise QueryError(f"{field} has no column in {grain}")
    if isinstance(column, Property):
        key = params.bind(column.key, ParamKind.STRING)
        return params.dialect.map_get.format(map=f"{alias}.properties", key=key)
    return f"{alias}.{column}"


_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"})


def _base(q: Query, grain: Grain, params: _Params) -> str:
    """The range's rows with dimensions as d0…, the bucket as t, and what the metrics need."""
    d = params.dialect
    alias, table = ("s", "sessions") if grain is Grain.SESSIONS else ("e", "events")
    select = [f"{_field_sql(dim, grain, params)} AS d{i}" for i, dim in enumerate(q.dimensions)]
    if q.interval is not None:
        if q.range.timezone in _UTC_ZONES:
            # Stored times are UTC already: a per-row conversion would double the series query's cost.
            local = f"{alias}.created_at"
        else:
            local = d.to_local_time.format(
                ts=f"{alias}.created_at", tz=params.bind(q.range.timezone, ParamKind.STRING, "tz")
            )
        select.append(f"{d.time_bucket[q.interval].format(ts=local)} AS t")
    if grain is Grain.SESSIONS:
        needed = "sign profile_id is_bounce duration screen_view_count event_count revenue"
    else:
        needed = "session_id profile_id name revenue"
    select += [f"{alias}.{c}" for c in needed.split()]
    start, end = q.range.utc_bounds()
    project = params.bind(q.project_id, ParamKind.STRING, "project_id")
    bounds = [
        f"{alias}.project_id = {project}",
        f"{alias}.created_at >= {params.bind(start, ParamKind.TIMESTAMP, 'start')}",
        f"{alias}.created_at < {params.bind(end, ParamKind.TIMESTAMP, 'end')}",
    ]
    where = list(bounds)
    source = table
    if grain is Grain.EVENTS and any(METRICS[m].needs_next_view for m in q.metrics):
        source, view_ms = _with_next_view(d, bounds)
        select.append(f"{view_ms} AS view_ms")
    other_grain: list[Filter] = []
    for f in q.filters:
        if _column(f.field, grain) is None:
            other_grain.append(f)  # entry/exit pages on events; event fields on forced sessions
        else:
            where.append(_filter_sql(f, _field_sql(f.field, grain, params), params))
    if other_grain and grain is Grain.SESSIONS:
        conds = [_filter_sql(f, _field_sql(f.field, Grain.EVENTS, params), params) for f in other_grain]
        # Same project and range as the sessions: a session counts when one of its events matches.
        where.append(
            f"s.id IN (SELECT e.session_id FROM events AS e WHERE e.project_id = {project} AND "
            f"e.created_at >= {d.param('start', ParamKind.TIMESTAMP)} AND "
            f"e.created_at < {d.param('end', ParamKind.TIMESTAMP)} AND " + " AND ".join(conds) + ")"
        )
    elif other_grain:
        conds = [_filter_sql(f, _field_sql(f.field, Grain.SESSIONS, params), params) for f in other_grain]
        # A version pair (+1, -1) matches or misses together, so sum(sign) > 0 keeps exactly the
        # sessions whose current version matches.
        where.append(
            f"e.session_id IN (SELECT s.id FROM sessions AS s WHERE s.project_id = {project} AND "
            + " AND ".join(conds)
            + " GROUP BY s.id HAVING sum(s.sign) > 0)"
        )
    return f"SELECT {', '.join(select)}\nFROM {source} AS {alias}\nWHERE " + "\n  AND ".join(where)


def _with_next_view(d: Dialect, bounds: list[str]) -> tuple[str, str]:
    """(a derived events table with next_at, the view_ms expression over it).

    The window runs inside, before the query's filters: a page's time is up to the session's next
    screen view whatever page that is. Partitions are (session, name), so a screen view's next row
    is the next screen view; a filter on name is a partition key and may still be pushed inside.
    Ties on created_at are ordered by id, the same way in both engines.
    """
    order = f"e.created_at, {d.uuid_order.format(expr='e.id')}"
    lead = d.lead.format(expr="e.created_at", partition="e.session_id, e.name", order=order)
    inner = f"(SELECT e.*, {lead} AS next_at\nFROM events AS e\nWHERE " + " AND ".join(bounds) + ")"
    diff = f"{d.epoch_ms.format(ts='e.next_at')} - {d.epoch_ms.format(ts='e.created_at')}"
    return inner, f"CASE WHEN e.name = 'screen_view' AND e.session_id <> '' THEN {diff} END"


def _session_rollup(params: _Params) -> str:
    """Each session of the base events, collapsed to its current version: bounced 0/1, duration."""
    # project_id is bound by _base, which always runs first.
    project = params.dialect.param("project_id", ParamKind.STRING)
    return (
        f"SELECT id, sum(sign * {_BOUNCED}) AS bounced, sum(sign * duration) AS duration\n"
        f"FROM sessions\nWHERE project_id = {project} AND id IN (SELECT session_id FROM base)\n"
        "GROUP BY id HAVING sum(sign) > 0"
    )


def _aggregate(
    source: str, keys: Sequence[str], grain: Grain, q: Query, prefix: str, d: Dialect
) -> tuple[list[tuple[str, str]], str]:
    """(extra CTEs, SELECT) computing q's metrics as m0… per `keys` over the `source` rows."""
    key_list = "".join(f"{k}, " for k in keys)
    group = f"\nGROUP BY {', '.join(keys)}" if keys else ""
    if grain is Grain.SESSIONS:
        metrics = ", ".join(f"{_session_metric(m, d)} AS m{i}" for i, m in enumerate(q.metrics))
        # Groups whose versions all cancel out (e.g. a session that moved bucket) are not results.
        having = "\nHAVING sum(sign) > 0" if keys else ""
        return [], f"SELECT {key_list}{metrics}\nFROM {source}{group}{having}"
    # Only the aggregates the metrics use: exact distinct counts are the expensive part.
    used = " ".join(METRICS[m].events(d) for m in q.metrics)
    aggregates = ", ".join(f"{sql(d)} AS {name}" for name, sql in _EVENT_AGGREGATES if name in used)
    aggregates = aggregates or "count(*) AS e_rows"  # still one row per key for the join below
    ctes = [(f"{prefix}agg_e", f"SELECT {key_list}{aggregates}\nFROM {source}{group}")]
    joined = f"{prefix}agg_e"
    if any(METRICS[m].needs_sessions for m in q.metrics):
        ctes.append(
            (
                f"{prefix}session_keys",
                f"SELECT DISTINCT {key_list}session_id FROM {source} WHERE session_id <> ''",
            )
        )
        rollup = ", ".join(
            [
                "count(*) AS s_sessions",
                "coalesce(sum(r.bounced), 0) AS s_bounces",
                f"{d.sum_if.format(expr='r.duration', cond='r.duration > 0')} AS s_duration",
                f"{d.count_if.format(cond='r.duration > 0')} AS s_timed",
            ]
        )
        ctes.append(
            (
                f"{prefix}agg_s",
                f"SELECT {key_list}{rollup}\nFROM {prefix}session_keys AS k "
                f"JOIN session_rollup AS r ON r.id = k.session_id{group}",
            )
        )
        join = f"LEFT JOIN {prefix}agg_s USING ({', '.join(keys)})" if keys else f"CROSS JOIN {prefix}agg_s"
        joined += f" {join}"
    metrics = ", ".join(f"{METRICS[m].events(d)} AS m{i}" for i, m in enumerate(q.metrics))
    return ctes, f"SELECT {key_list}{metrics}\nFROM {joined}"


def _session_metric(m: Metric, d: Dialect) -> str:
    sql = METRICS[m].sessions
    if sql is None:  # choose_grain never picks sessions for these
        raise QueryError(f"metrics: {m} exists on events only")
    return sql(d)


def _filter_sql(f: Filter, expr: str, params: _Params) -> str:
    op = FILTER_OPERATORS[f.operator]
    template = op.template(params.dialect)
    if op.kind is ValueKind.NONE:
        return f"({template.format(expr=expr, value='')})"
    if not f.values:
        raise QueryError(f"filters: {f.operator} on {f.field} needs at least one value")
    kind = ParamKind.FLOAT if op.kind is ValueKind.NUMBER else ParamKind.STRING
    parts = [template.format(expr=expr, value=params.bind(_coerce(v, op.kind, f), kind)) for v in f.values]
    sql = " OR ".join(parts)
    return f"(NOT ({sql}))" if op.negate else f"({sql})"


def _coerce(value: FilterValue, kind: ValueKind, f: Filter) -> str | float:
    if kind is ValueKind.NUMBER:
        if isinstance(value, bool) or value is None:
            raise QueryError(f"filters: {f.operator} on {f.field} needs numbers, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        # NaN compares differently in the engines (DuckDB orders it above every number).
        if not math.isfinite(number):
            raise QueryError(f"filters: {f.operator} on {f.field} needs numbers, got {value!r} (finite ones)")
        return number
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
