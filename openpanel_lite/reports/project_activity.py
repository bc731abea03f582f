"""Two small reports for the project pages: daily sessions for a sparkline, and "has any event arrived"."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from openpanel_lite.query import DateRange, Interval, Metric, Query
from openpanel_lite.storage import EventStore
from openpanel_lite.storage.sql import compile_query
from openpanel_lite.storage.sql_list import EventListQuery, compile_event_list


def daily_sessions(
    store: EventStore, project_id: str, timezone: str, *, last_day: date, days: int
) -> list[int]:
    """Sessions per local day for the `days` days ending with `last_day` (inclusive), oldest first.

    Days without sessions are 0, so the list always has `days` entries.
    """
    first_day = last_day - timedelta(days=days - 1)
    query = Query(
        project_id=project_id,
        range=DateRange(
            start=datetime.combine(first_day, time(0)),
            end=datetime.combine(last_day + timedelta(days=1), time(0)),
            timezone=timezone,
        ),
        metrics=(Metric.SESSIONS,),
        interval=Interval.DAY,
    )
    sql, params = compile_query(query, store.dialect)
    counts: dict[date, int] = {}
    for bucket, sessions in store.fetch(sql, params):
        day = bucket.date() if isinstance(bucket, datetime) else bucket
        counts[day] = int(sessions or 0)
    return [counts.get(first_day + timedelta(days=i), 0) for i in range(days)]


def has_events(store: EventStore, project_id: str) -> bool:
    """Whether the store holds at least one event of the project (any name, any time)."""
    # Only the page statement is run: LIMIT 1 stops at the first row, the count would scan them all.
    _count_sql, page_sql, params = compile_event_list(
        EventListQuery(project_id=project_id, columns=("id",), limit=1), store.dialect
    )
    return bool(store.fetch(page_sql, params))
