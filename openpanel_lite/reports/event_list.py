"""The event list (export API, event explorer): one page of events plus the total count."""

from __future__ import annotations

from typing import Any

import msgspec

from openpanel_lite.storage import EventStore
from openpanel_lite.storage.sql_list import EventListQuery, compile_event_list


class EventPage(msgspec.Struct, frozen=True):
    total: int
    rows: list[dict[str, Any]]


def list_events(store: EventStore, q: EventListQuery) -> EventPage:
    count_sql, page_sql, params = compile_event_list(q, store.dialect)
    count_params = {k: v for k, v in params.items() if k not in ("limit", "offset")}
    total = int(store.fetch(count_sql, count_params)[0][0])
    rows = [dict(zip(q.columns, r, strict=True)) for r in store.fetch(page_sql, params)]
    return EventPage(total, rows)
