"""The realtime page (openpanel-facts §5.3): live visitors, a per-minute histogram of the last 30
minutes, the latest events, and country / referrer / path tables over the same 30 minutes.

Everything is read from events by event time (created_at), through the query compiler, so a realtime
number means what the same metric means on the overview: visitors are distinct profile ids, sessions
distinct session ids, page views screen_view events. The visitor count is reports/live.py's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from openpanel_lite.cache import Reader
from openpanel_lite.dates import buckets
from openpanel_lite.query import (
    DateRange,
    Dimension,
    Filter,
    FilterOperator,
    Grain,
    Interval,
    Metric,
    Order,
    Query,
)
from openpanel_lite.reports.events import EventItem, event_item
from openpanel_lite.reports.live import live_visitors
from openpanel_lite.reports.overview import fetch
from openpanel_lite.storage.dialects import ParamKind
from openpanel_lite.storage.rows import EventRow

WINDOW = timedelta(minutes=30)
MINUTES = 30
FEED_SIZE = 50
TABLE_ROWS = 10
FEED_COLUMNS = (
    *("id", "name", "created_at", "profile_id", "session_id", "path", "origin"),
    *("referrer_name", "country", "city", "os", "browser", "device", "properties"),
)


class MinuteBar(msgspec.Struct, frozen=True, kw_only=True):
    minute: datetime  # bucket start, wall-clock time in the project's zone
    sessions: int
    visitors: int


class RealtimeRow(msgspec.Struct, frozen=True, kw_only=True):
    """A table row: what it shows (`name`), the value a filter on it uses, and its counts."""

    name: str
    value: str  # the country / referrer name / path itself (name adds the origin to a path)
    sessions: int
    events: int


class Realtime(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime  # the moment the numbers describe (aware, project zone)
    visitors: int  # distinct profiles in the last 5 minutes
    minutes: list[MinuteBar]  # oldest first, every minute present
    countries: list[RealtimeRow]
    referrers: list[RealtimeRow]
    paths: list[RealtimeRow]
    feed: list[EventItem]  # newest first


def window(now: datetime, timezone: str) -> DateRange:
    """The 30 whole minutes ending with the current one: [minute − 29, minute + 1)."""
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    return DateRange(
        start=minute - timedelta(minutes=MINUTES - 1), end=minute + timedelta(minutes=1), timezone=timezone
    )


def minutes(reader: Reader, project_id: str, r: DateRange) -> list[MinuteBar]:
    """Distinct sessions and visitors with an event in each minute of `r`."""
    query = Query(
        project_id=project_id,
        range=r,
        metrics=(Metric.SESSIONS, Metric.UNIQUE_VISITORS),
        interval=Interval.MINUTE,
        grain=Grain.EVENTS,
    )
    found = {t: (int(s), int(v)) for t, s, v in fetch(reader, query)}
    return [
        MinuteBar(minute=t, sessions=found.get(t, (0, 0))[0], visitors=found.get(t, (0, 0))[1])
        for t in buckets(r, Interval.MINUTE)
    ]


def _table(
    reader: Reader,
    project_id: str,
    r: DateRange,
    dims: tuple[Dimension, ...],
    filters: tuple[Filter, ...] = (),
) -> list[RealtimeRow]:
    """Top values of `dims` (joined without a separator: origin + path is the page URL)."""
    query = Query(
        project_id=project_id,
        range=r,
        metrics=(Metric.SESSIONS, Metric.EVENTS),
        dimensions=dims,
        filters=filters,
        grain=Grain.EVENTS,
        limit=TABLE_ROWS,
        order=(Order(Metric.SESSIONS), Order(Metric.EVENTS)),
    )
    rows = []
    for row in fetch(reader, query):
        keys, (sessions, events) = row[: len(dims)], row[len(dims) :]
        name = "".join(str(k) for k in keys)
        rows.append(RealtimeRow(name=name, value=str(keys[-1]), sessions=int(sessions), events=int(events)))
    return rows


def feed(reader: Reader, project_id: str, since: datetime, zone: ZoneInfo) -> list[EventItem]:
    """The latest FEED_SIZE events since `since` (aware), newest first."""
    d = reader.dialect
    sql = (
        f"SELECT {', '.join(FEED_COLUMNS)} FROM events "
        f"WHERE project_id = {d.param('project_id', ParamKind.STRING)} "
        f"AND created_at >= {d.param('since', ParamKind.TIMESTAMP)} "
        f"ORDER BY created_at DESC, {d.uuid_order.format(expr='id')} DESC "
        f"LIMIT {d.param('limit', ParamKind.INT)}"
    )
    params = {
        "project_id": project_id,
        "since": since.astimezone(UTC).replace(tzinfo=None),
        "limit": FEED_SIZE,
    }
    return [event_item(dict(zip(FEED_COLUMNS, row, strict=True)), zone) for row in reader.fetch(sql, params)]


def feed_item(event: EventRow, zone: ZoneInfo) -> EventItem:
    """An event from the in-process bus as a feed entry (same shape as one read from the store)."""
    row = {c: getattr(event, c) for c in FEED_COLUMNS}
    return event_item(row, zone)


def realtime(reader: Reader, project_id: str, timezone: str, now: datetime | None = None) -> Realtime:
    """Every realtime widget at `now` (default: this second)."""
    # Whole seconds: tabs refreshing within the same second share the cached answers.
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    zone = ZoneInfo(timezone)
    r = window(at, timezone)
    views = (
        Filter(Dimension.NAME, FilterOperator.IS, ("screen_view",)),
        Filter(Dimension.PATH, FilterOperator.IS_NOT_NULL),
    )
    return Realtime(
        at=at.astimezone(zone),
        visitors=live_visitors(reader, project_id, at).visitors,
        minutes=minutes(reader, project_id, r),
        countries=_table(reader, project_id, r, (Dimension.COUNTRY,)),
        referrers=_table(
            reader,
            project_id,
            r,
            (Dimension.REFERRER_NAME,),
            (Filter(Dimension.REFERRER_NAME, FilterOperator.IS_NOT_NULL),),
        ),
        paths=_table(reader, project_id, r, (Dimension.ORIGIN, Dimension.PATH), views),
        feed=feed(reader, project_id, at - WINDOW, zone),
    )
