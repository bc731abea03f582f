"""Query -> (SQL, named parameters) for any Dialect, from three tables: METRICS, DIMENSIONS and
FILTER_OPERATORS (storage/sql_vocabulary.py). Every value is bound as a parameter; identifiers come
only from these tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
from openpanel_lite.storage.sql_vocabulary import (
    _BOUNCED,
    _EVENT_AGGREGATES,
    _PAGE_AGGREGATES,
    DIMENSIONS,
    FILTER_OPERATORS,
    METRICS,
    DimensionSql,
    MetricSql,
    OperatorSql,
    ValueKind,
)

__all__ = [
    "DIMENSIONS",
    "FILTER_OPERATORS",
    "METRICS",
    "DimensionSql",
    "MetricSql",
    "OperatorSql",
    "ValueKind",
    "choose_grain",
    "compile_query",
    "result_columns",
]

# (The tables are re-exported: callers and tests import them from here.)

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
    pages = _pages_table(q, grain)
    ctes: list[tuple[str, str]] = [("base", _page_base(q, params) if pages else _base(q, grain, params))]
    timed = grain is Grain.EVENTS and any(METRICS[m].needs_view_durations for m in q.metrics)
    if timed:
        ctes.append(("base_v", _view_base(q, params)))
    if grain is Grain.EVENTS and any(METRICS[m].needs_sessions for m in q.metrics):
        ctes.append(("session_rollup", _session_rollup(params)))
    order = _order(q)
    source = "base"
    if q.interval is not None and dims and q.limit is not None:
        # Series of the top N dimension values: rank them over the whole range first.
        rank_ctes, rank_select = _aggregate(("base", "base_v"), dims, grain, q, "rank_", params.dialect)
        ctes += rank_ctes
        top = (
            f"SELECT {', '.join(dims)} FROM (\n{rank_select}\n) AS ranked\nORDER BY {', '.join(order + dims)}"
        )
        ctes.append(("top_keys", top + _limit(q, params)))
        ctes.append(("base_top", f"SELECT base.* FROM base JOIN top_keys USING ({', '.join(dims)})"))
        if timed:
            top_views = f"SELECT base_v.* FROM base_v JOIN top_keys USING ({', '.join(dims)})"
            ctes.append(("base_v_top", top_views))
        source = "base_top"
    keys = dims + (["t"] if q.interval is not None else [])
    sources = (source, "base_v_top" if source == "base_top" else "base_v")
    agg_ctes, select = _aggregate(sources, keys, grain, q, "", params.dialect, pages=pages)
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
        select.append(f"{_local_bucket(q, f'{alias}.created_at', params)} AS t")
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
    source = f"{table} AS {alias}"
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
    return f"SELECT {', '.join(select)}\nFROM {source}\nWHERE " + "\n  AND ".join(where)


def _local_bucket(q: Query, ts: str, params: _Params) -> str:
    """The interval bucket of timestamp `ts` in the query's time zone."""
    assert q.interval is not None
    d = params.dialect
    if q.range.timezone in _UTC_ZONES:
        local = ts  # stored times are UTC already: a per-row conversion would double the cost
    else:
        local = d.to_local_time.format(ts=ts, tz=params.bind(q.range.timezone, ParamKind.STRING, "tz"))
    return d.time_bucket[q.interval].format(ts=local)


# Event columns the time-on-page table has too.
_VIEW_COLUMNS = frozenset({"path", "origin"})


def _view_base(q: Query, params: _Params) -> str:
    """The range's time-on-page rows (storage/rows.py ViewDurationRow) keyed as _base keys events,
    for Metric.AVG_TIME_ON_PAGE: sum(sign * duration) / sum(sign) per key.

    Filters on path and origin apply to the rows directly; a filter on any other event field keeps the
    rows whose view matches it, and a session field the rows of matching sessions. name = 'screen_view'
    holds for every row.
    """
    d = params.dialect
    select = []
    for i, dim in enumerate(q.dimensions):
        column = _column(dim, Grain.EVENTS)
        if not (isinstance(column, str) and column in _VIEW_COLUMNS):
            raise QueryError(f"metrics: {Metric.AVG_TIME_ON_PAGE} cannot be grouped by {_name(dim)}")
        select.append(f"v.{column} AS d{i}")
    if q.interval is not None:
        select.append(f"{_local_bucket(q, 'v.created_at', params)} AS t")
    select += ["v.sign", "v.duration"]
    project, start, end = (d.param(n, k) for n, k in _BOUNDS)
    where = [f"v.project_id = {project}", f"v.created_at >= {start}", f"v.created_at < {end}"]
    on_views: list[str] = []
    on_sessions: list[str] = []
    for f in q.filters:
        column = _column(f.field, Grain.EVENTS)
        if isinstance(column, str) and column in _VIEW_COLUMNS:
            where.append(_filter_sql(f, f"v.{column}", params))
        elif _is_views_filter(f):
            continue
        elif column is not None:
            on_views.append(_filter_sql(f, _field_sql(f.field, Grain.EVENTS, params), params))
        else:
            on_sessions.append(_filter_sql(f, _field_sql(f.field, Grain.SESSIONS, params), params))
    if on_views:
        where.append(
            "(v.session_id, v.created_at, v.path) IN (SELECT e.session_id, e.created_at, e.path "
            f"FROM events AS e WHERE e.project_id = {project} AND e.created_at >= {start} AND "
            f"e.created_at < {end} AND e.name = '{_VIEW}' AND " + " AND ".join(on_views) + ")"
        )
    if on_sessions:
        where.append(
            f"v.session_id IN (SELECT s.id FROM sessions AS s WHERE s.project_id = {project} AND "
            + " AND ".join(on_sessions)
            + " GROUP BY s.id HAVING sum(s.sign) > 0)"
        )
    return f"SELECT {', '.join(select)}\nFROM view_durations AS v\nWHERE " + "\n  AND ".join(where)


def _pages_table(q: Query, grain: Grain) -> bool:
    """Whether q is a Pages table the page_views rows answer (storage/rows.py PageViewRow): screen
    views by (origin, path) with sessions, pageviews and time on page, filtered by page only."""
    if (
        grain is not Grain.EVENTS
        or q.interval is not None
        or q.dimensions != (Dimension.ORIGIN, Dimension.PATH)
    ):
        return False
    if not set(q.metrics) <= {Metric.SESSIONS, Metric.PAGEVIEWS, Metric.AVG_TIME_ON_PAGE}:
        return False
    views_only = False
    for f in q.filters:
        if _is_views_filter(f):
            views_only = True
        elif _column(f.field, Grain.EVENTS) not in _VIEW_COLUMNS:
            return False
    return views_only


def _is_views_filter(f: Filter) -> bool:
    return f.field is Dimension.NAME and f.operator is FilterOperator.IS and set(f.values) == {_VIEW}


def _page_base(q: Query, params: _Params) -> str:
    """The range's page_views rows keyed (origin, path) as d0, d1, with the page filters applied."""
    project = params.bind(q.project_id, ParamKind.STRING, "project_id")
    start, end = q.range.utc_bounds()
    where = [
        f"p.project_id = {project}",
        f"p.created_at >= {params.bind(start, ParamKind.TIMESTAMP, 'start')}",
        f"p.created_at < {params.bind(end, ParamKind.TIMESTAMP, 'end')}",
    ]
    for f in q.filters:
        column = _column(f.field, Grain.EVENTS)
        if isinstance(column, str) and column in _VIEW_COLUMNS:
            where.append(_filter_sql(f, f"p.{column}", params))
    select = "p.origin AS d0, p.path AS d1, p.session_id, p.previous_at, p.sign"
    return f"SELECT {select}\nFROM page_views AS p\nWHERE " + "\n  AND ".join(where)


_VIEW = "screen_view"
_BOUNDS = (("project_id", ParamKind.STRING), ("start", ParamKind.TIMESTAMP), ("end", ParamKind.TIMESTAMP))


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
    sources: tuple[str, str],
    keys: Sequence[str],
    grain: Grain,
    q: Query,
    prefix: str,
    d: Dialect,
    *,
    pages: bool = False,
) -> tuple[list[tuple[str, str]], str]:
    """(extra CTEs, SELECT) computing q's metrics as m0… per `keys` over the rows of sources[0]
    (and the time-on-page rows of sources[1] when a metric needs them). `pages`: sources[0] holds
    _page_base rows, not events."""
    source, view_source = sources
    key_list = "".join(f"{k}, " for k in keys)
    group = f"\nGROUP BY {', '.join(keys)}" if keys else ""
    if grain is Grain.SESSIONS:
        metrics = ", ".join(f"{_session_metric(m, d)} AS m{i}" for i, m in enumerate(q.metrics))
        # Groups whose versions all cancel out (e.g. a session that moved bucket) are not results.
        having = "\nHAVING sum(sign) > 0" if keys else ""
        return [], f"SELECT {key_list}{metrics}\nFROM {source}{group}{having}"
    # Only the aggregates the metrics use: exact distinct counts are the expensive part.
    used = " ".join(METRICS[m].events(d) for m in q.metrics)
    table = _PAGE_AGGREGATES if pages else _EVENT_AGGREGATES
    aggregates = ", ".join(f"{sql(d)} AS {name}" for name, sql in table if name in used)
    aggregates = aggregates or "count(*) AS e_rows"  # still one row per key for the join below
    # A page whose rows all cancel out had no view.
    viewed = "\nHAVING sum(sign) > 0" if pages else ""
    ctes = [(f"{prefix}agg_e", f"SELECT {key_list}{aggregates}\nFROM {source}{group}{viewed}")]
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
    if any(METRICS[m].needs_view_durations for m in q.metrics):
        view_time = (
            "coalesce(sum(sign * duration), 0) AS e_view_time, coalesce(sum(sign), 0) AS e_timed_views"
        )
        ctes.append((f"{prefix}agg_v", f"SELECT {key_list}{view_time}\nFROM {view_source}{group}"))
        join = f"LEFT JOIN {prefix}agg_v USING ({', '.join(keys)})" if keys else f"CROSS JOIN {prefix}agg_v"
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
