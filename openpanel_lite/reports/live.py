"""Live visitors (openpanel-facts §5.2 live counter, §6.2 GET /live): distinct profile ids of the
project's events in the last five minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from openpanel_lite.cache import Reader
from openpanel_lite.query import DateRange, Grain, Metric, Query
from openpanel_lite.reports.overview import fetch

WINDOW = timedelta(minutes=5)


class Live(msgspec.Struct, frozen=True, kw_only=True):
    visitors: int


def live_visitors(reader: Reader, project_id: str, now: datetime | None = None) -> Live:
    """Visitors with any event in (now − 5 min, now], counted on whole seconds so that calls within
    one second share a cached answer."""
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    query = Query(
        project_id=project_id,
        range=DateRange(start=at - WINDOW, end=at),
        metrics=(Metric.UNIQUE_VISITORS,),
        grain=Grain.EVENTS,
    )
    return Live(visitors=int(fetch(reader, query)[0][0]))
