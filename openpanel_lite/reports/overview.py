"""The overview's metric cards and main chart (openpanel-facts §3.4, §5.2): seven metrics for the
current period, the previous one and the change, and one metric per time bucket for both periods.

Where the numbers come from, as upstream's overview.service does it:
- no page filter: sessions (versioned rows summed by sign), bucketed by session start. Filters on
  event-only fields (name, properties.*) keep the sessions with a matching event in the range.
- a page filter (path or origin): the matching screen_view events. Visitors and sessions are distinct
  profile/session ids of those views, pageviews their count, views per session pageviews / sessions;
  bounce rate comes from the sessions those views belong to. Session duration becomes the average
  time from a matching view to the next screen_view of its session (Metric.AVG_TIME_ON_PAGE), as
  upstream's overview does with a path filter (openpanel-facts §3.4).
  Deviation, deliberate: views per session is the period's ratio, not upstream's average of the
  per-bucket ratios (which counts empty buckets as 0).
- revenue, always: the sum of `revenue` events in the range (by event time) matching the filters.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from openpanel_lite.cache import Reader
from openpanel_lite.dates import Period, buckets
from openpanel_lite.query import (
    DateRange,
    Dimension,
    Filter,
    FilterOperator,
    Grain,
    Interval,
    Metric,
    Query,
)
from openpanel_lite.storage.sql import compile_query

# Counts are ints and ratios floats; annotated as float (which accepts ints) because `int | float`
# becomes oneOf[integer, number] in the OpenAPI schema, which every whole number breaks (S02).
Number = float

# The cards, in upstream's order.
CARD_METRICS: tuple[Metric, ...] = (
    Metric.UNIQUE_VISITORS,
    Metric.SESSIONS,
    Metric.PAGEVIEWS,
    Metric.VIEWS_PER_SESSION,
    Metric.BOUNCE_RATE,
    Metric.AVG_SESSION_DURATION,
    Metric.REVENUE,
)
# Metrics the store returns as integers (the others are DOUBLE).
COUNT_METRICS = frozenset({Metric.UNIQUE_VISITORS, Metric.SESSIONS, Metric.PAGEVIEWS, Metric.EVENTS})
_PAGE_FIELDS = (Dimension.PATH, Dimension.ORIGIN)
SCREEN_VIEW = Filter(Dimension.NAME, FilterOperator.IS, ("screen_view",))
REVENUE_EVENTS = Filter(Dimension.NAME, FilterOperator.IS, ("revenue",))
# With a page filter, what the store computes for a card instead.
_PAGE_FILTERED = {Metric.AVG_SESSION_DURATION: Metric.AVG_TIME_ON_PAGE}


class OverviewQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What every overview widget is asked: a period (range, interval, previous) and filters."""

    period: Period
    filters: tuple[Filter, ...] = ()


class Card(msgspec.Struct, frozen=True, kw_only=True):
    metric: Metric
    value: Number
    previous: Number
    # Percent, 1 decimal, as upstream's getPreviousMetric; None when the previous value is 0.
    change: float | None


class Cards(msgspec.Struct, frozen=True, kw_only=True):
    current: DateRange
    previous: DateRange
    cards: list[Card]


class SeriesPoint(msgspec.Struct, frozen=True, kw_only=True):
    # Bucket starts as wall-clock times in the project's zone, carrying that zone (so JSON gets the
    # offset of that instant, as RFC 3339 date-time requires); previous points align by index.
    time: datetime
    value: Number
    previous_time: datetime | None
    previous: Number | None


class Series(msgspec.Struct, frozen=True, kw_only=True):
    metric: Metric
    interval: Interval
    current: DateRange
    previous: DateRange
    points: list[SeriesPoint]


# ---------------------------------------------------------------------------------------------
# helpers shared by the overview reports


def zoned(r: DateRange) -> DateRange:
    """`r` with its wall-clock bounds tagged with its zone. The JSON twins document these as RFC 3339
    date-time, which needs an offset; msgspec writes the zone's offset at each instant (DST-correct).
    Both bounds share one tzinfo, so `end - start` stays the wall-clock difference."""
    zone = ZoneInfo(r.timezone)
    return DateRange(start=_at(r.start, zone), end=_at(r.end, zone), timezone=r.timezone)


def _at(t: datetime, zone: ZoneInfo) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=zone)


def fetch(reader: Reader, query: Query) -> list[tuple[Any, ...]]:
    sql, params = compile_query(query, reader.dialect)
    return reader.fetch(sql, params)


def has_page_filter(filters: tuple[Filter, ...]) -> bool:
    return any(f.field in _PAGE_FIELDS for f in filters)


def change(current: Number, previous: Number) -> float | None:
    """round((current / previous - 1) * 100, 1) with JavaScript's half-up rounding; None for /0."""
    if previous == 0:
        return None
    return math.floor((current / previous - 1) * 1000 + 0.5) / 10


def _metric_queries(
    project_id: str, r: DateRange, q: OverviewQuery, metrics: tuple[Metric, ...], interval: Interval | None
) -> list[tuple[tuple[Metric, ...], Query]]:
    """The store queries answering `metrics` over `r` (see the module docstring)."""
    out: list[tuple[tuple[Metric, ...], Query]] = []
    other = tuple(m for m in metrics if m is not Metric.REVENUE)
    if other:
        if has_page_filter(q.filters):
            # Results keep the card's name (`other`); the store is asked for time on page instead.
            on_pages = tuple(_PAGE_FILTERED.get(m, m) for m in other)
            query = Query(
                project_id=project_id,
                range=r,
                metrics=on_pages,
                filters=(*q.filters, SCREEN_VIEW),
                interval=interval,
                grain=Grain.EVENTS,
            )
        else:
            query = Query(
                project_id=project_id,
                range=r,
                metrics=other,
                filters=q.filters,
                interval=interval,
                grain=Grain.SESSIONS,
            )
        out.append((other, query))
    if Metric.REVENUE in metrics:
        revenue = Query(
            project_id=project_id,
            range=r,
            metrics=(Metric.REVENUE,),
            filters=(*q.filters, REVENUE_EVENTS),
            interval=interval,
            grain=Grain.EVENTS,
        )
        out.append(((Metric.REVENUE,), revenue))
    return out


def totals(reader: Reader, project_id: str, r: DateRange, q: OverviewQuery) -> dict[Metric, Number]:
    """The seven card metrics over one range."""
    values: dict[Metric, Number] = {}
    for metrics, query in _metric_queries(project_id, r, q, CARD_METRICS, None):
        row = fetch(reader, query)[0]
        values.update(zip(metrics, row, strict=True))
    return values


def bucket_values(
    reader: Reader, project_id: str, r: DateRange, q: OverviewQuery, metric: Metric
) -> list[tuple[datetime, Number]]:
    """One metric per bucket of `r`, every bucket present (zero where nothing happened)."""
    interval = q.period.interval
    found: dict[datetime, Number] = {}
    for _, query in _metric_queries(project_id, r, q, (metric,), interval):
        found.update((t, v) for t, v in fetch(reader, query))
    zero: Number = 0 if metric in COUNT_METRICS else 0.0
    return [(t, found.get(t, zero)) for t in buckets(r, interval)]


# ---------------------------------------------------------------------------------------------
# reports


def cards(reader: Reader, project_id: str, q: OverviewQuery) -> Cards:
    """Each card's value for the period, for the previous period, and the change in percent."""
    now = totals(reader, project_id, q.period.current, q)
    before = totals(reader, project_id, q.period.previous, q)
    return Cards(
        current=zoned(q.period.current),
        previous=zoned(q.period.previous),
        cards=[
            Card(metric=m, value=now[m], previous=before[m], change=change(now[m], before[m]))
            for m in CARD_METRICS
        ],
    )


def series(reader: Reader, project_id: str, q: OverviewQuery, metric: Metric) -> Series:
    """`metric` per bucket for the period, with the previous period's bucket of the same index."""
    now = bucket_values(reader, project_id, q.period.current, q, metric)
    before = bucket_values(reader, project_id, q.period.previous, q, metric)
    zone = ZoneInfo(q.period.current.timezone)
    points = []
    for i, (t, value) in enumerate(now):
        prev_t, prev = before[i] if i < len(before) else (None, None)
        prev_at = None if prev_t is None else _at(prev_t, zone)
        points.append(SeriesPoint(time=_at(t, zone), value=value, previous_time=prev_at, previous=prev))
    return Series(
        metric=metric,
        interval=q.period.interval,
        current=zoned(q.period.current),
        previous=zoned(q.period.previous),
        points=points,
    )
