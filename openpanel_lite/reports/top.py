"""The overview's top-N tables (openpanel-facts §5.2, upstream's getTopGeneric / getTopPages /
getTopEntryExit): one generic report for any Dimension, plus custom events, outgoing links and any
event property.

- Session columns (sources, UTMs, geo, devices, entry/exit pages): sessions = sum(sign),
  pageviews = sum(sign * screen_view_count), revenue = sum(sign * revenue), grouped by session and
  ordered by sessions. Region/city carry their country, versions their browser/OS, entry/exit pages
  their origin, as `prefix`. Filters on event fields keep the sessions with a matching event.
- Pages (path, origin): screen_view events; sessions = distinct session ids, pageviews = count.
  The pages table (path) adds, as openpanel-facts §5.7 has it:
  - avg_duration: seconds from a view of the page to the next screen_view of the same session
    (even one after the range), averaged over the views that have a next one (Metric.AVG_TIME_ON_PAGE,
    from the rows ingest writes when the next view arrives; None when none has);
  - bounce_rate: of the sessions that started in the range on this page (its entry page, same
    origin), the percent that bounced; None when no session entered there. It counts entries, so
    its sessions are not the table's `sessions` (every session that viewed the page).
- Events (name): custom events by count (not session_start, session_end, screen_view).
- link_out: `properties.href` of link_out events. properties.<key>: any event property.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from openpanel_lite.cache import Reader
from openpanel_lite.query import (
    Dimension,
    Filter,
    FilterOperator,
    Grain,
    Metric,
    Order,
    Property,
    Query,
    QueryError,
    parse_field,
)
from openpanel_lite.reports.overview import OverviewQuery, fetch

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000  # upstream's MAX_RECORDS_LIMIT
LINK_OUT = "link_out"
EVENTS = "events"
PAGES = "pages"
_SYNTHETIC = ("session_start", "session_end", "screen_view")

_PREFIX: dict[Dimension, Dimension] = {
    Dimension.REGION: Dimension.COUNTRY,
    Dimension.CITY: Dimension.COUNTRY,
    Dimension.BROWSER_VERSION: Dimension.BROWSER,
    Dimension.OS_VERSION: Dimension.OS,
    Dimension.ENTRY_PATH: Dimension.ENTRY_ORIGIN,
    Dimension.EXIT_PATH: Dimension.EXIT_ORIGIN,
    Dimension.PATH: Dimension.ORIGIN,
}


class TopRow(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # "" when the value is not set (direct traffic, unknown country …)
    prefix: str | None = None
    sessions: int
    pageviews: int | None = None
    revenue: float | None = None
    count: int | None = None  # events tables: number of events
    avg_duration: float | None = None  # pages table: seconds to the next page view
    bounce_rate: float | None = None  # pages table: percent of the sessions entering here


class TopTable(msgspec.Struct, frozen=True, kw_only=True):
    table: str  # the dimension name, "pages", "events", "link_out" or "properties.<key>"
    columns: list[str]  # the TopRow fields this table fills, in display order
    limit: int
    offset: int
    rows: list[TopRow]


@dataclass(frozen=True, slots=True)
class _Spec:
    field: Dimension | Property
    metrics: tuple[Metric, ...]
    grain: Grain
    filters: tuple[Filter, ...] = ()

    @property
    def columns(self) -> list[str]:
        names = {
            Metric.SESSIONS: "sessions",
            Metric.PAGEVIEWS: "pageviews",
            Metric.REVENUE: "revenue",
            Metric.AVG_TIME_ON_PAGE: "avg_duration",
        }
        columns = [names.get(m, "count") for m in self.metrics]
        return [*columns, "bounce_rate"] if self.entry_bounces else columns

    @property
    def entry_bounces(self) -> bool:
        """The pages table: bounce rate per page from the sessions that entered there."""
        return self.field is Dimension.PATH


_SESSION_METRICS = (Metric.SESSIONS, Metric.PAGEVIEWS, Metric.REVENUE)
_PAGE_METRICS = (Metric.SESSIONS, Metric.PAGEVIEWS, Metric.AVG_TIME_ON_PAGE)
_EVENT_METRICS = (Metric.EVENTS, Metric.SESSIONS)
_VIEWS = Filter(Dimension.NAME, FilterOperator.IS, ("screen_view",))
_PAGE_VIEWS = (_VIEWS, Filter(Dimension.PATH, FilterOperator.IS_NOT_NULL))


def _spec(table: str) -> _Spec:
    """The spec of a table name; QueryError for unknown ones."""
    if table == LINK_OUT:
        return _Spec(
            Property("href"),
            _EVENT_METRICS,
            Grain.EVENTS,
            (Filter(Dimension.NAME, FilterOperator.IS, (LINK_OUT,)),),
        )
    if table == EVENTS:
        table = Dimension.NAME.value
    elif table == PAGES:
        table = Dimension.PATH.value
    field = parse_field(table)
    if isinstance(field, Property):
        return _Spec(field, _EVENT_METRICS, Grain.EVENTS)
    if field is Dimension.NAME:
        return _Spec(field, _EVENT_METRICS, Grain.EVENTS, (Filter(field, FilterOperator.IS_NOT, _SYNTHETIC),))
    if field is Dimension.PATH:
        return _Spec(field, _PAGE_METRICS, Grain.EVENTS, _PAGE_VIEWS)
    if field is Dimension.ORIGIN:
        return _Spec(field, (Metric.SESSIONS, Metric.PAGEVIEWS), Grain.EVENTS, _PAGE_VIEWS)
    return _Spec(field, _SESSION_METRICS, Grain.SESSIONS)


def table_name(table: str) -> str:
    """The canonical name of a table (`referrerName` -> `referrer_name`, `pages` -> `path`)."""
    spec = _spec(table)
    if table == LINK_OUT:
        return LINK_OUT
    field = spec.field
    return field.value if isinstance(field, Dimension) else f"properties.{field.key}"


def top(
    reader: Reader, project_id: str, q: OverviewQuery, table: str, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> TopTable:
    """Rows `offset`… `offset + limit` of a top-N table over the current period."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit: must be between 1 and {MAX_LIMIT}")
    spec = _spec(table)
    prefix = _PREFIX.get(spec.field) if isinstance(spec.field, Dimension) else None
    dims: tuple[Dimension | Property, ...] = (prefix, spec.field) if prefix else (spec.field,)
    query = Query(
        project_id=project_id,
        range=q.period.current,
        metrics=spec.metrics,
        dimensions=dims,
        filters=(*q.filters, *spec.filters),
        grain=spec.grain,
        limit=limit,
        offset=offset,
        # Ties on the first metric: the second decides, then the values (stable pages).
        order=(Order(spec.metrics[0]), Order(spec.metrics[1])),
    )
    rows = []
    found = fetch(reader, query)
    bounces = _entry_bounces(reader, project_id, q, found) if spec.entry_bounces else {}
    for row in found:
        keys, values = row[: len(dims)], row[len(dims) :]
        metrics = dict(zip(spec.metrics, values, strict=True))
        timed = metrics.get(Metric.AVG_TIME_ON_PAGE)
        rows.append(
            TopRow(
                name=keys[-1],
                prefix=keys[0] if prefix else None,
                sessions=int(metrics[Metric.SESSIONS]),
                pageviews=_int(metrics.get(Metric.PAGEVIEWS)),
                revenue=None if Metric.REVENUE not in metrics else float(metrics[Metric.REVENUE]),
                count=_int(metrics.get(Metric.EVENTS)),
                # 0 from the store means no view had a next one: not a time of zero.
                avg_duration=float(timed) if timed else None,
                bounce_rate=bounces.get((keys[0], keys[-1])),
            )
        )
    return TopTable(table=table_name(table), columns=spec.columns, limit=limit, offset=offset, rows=rows)


def _entry_bounces(
    reader: Reader, project_id: str, q: OverviewQuery, pages: list[tuple[object, ...]]
) -> dict[tuple[object, object], float]:
    """(origin, path) -> bounce rate of the sessions that entered on it, for the listed pages."""
    paths = tuple(sorted({str(row[1]) for row in pages}))
    if not paths:
        return {}
    query = Query(
        project_id=project_id,
        range=q.period.current,
        metrics=(Metric.SESSIONS, Metric.BOUNCE_RATE),
        dimensions=(Dimension.ENTRY_ORIGIN, Dimension.ENTRY_PATH),
        filters=(*q.filters, Filter(Dimension.ENTRY_PATH, FilterOperator.IS, paths)),
        grain=Grain.SESSIONS,
    )
    return {(origin, path): float(rate) for origin, path, _sessions, rate in fetch(reader, query)}


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None
