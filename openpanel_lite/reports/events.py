"""The event explorer's reads (openpanel-facts §5.4): a page of events filtered by name and by any field
or property, one event with every column, and the event names a project has (for the name filter).

Lists go through reports/event_list.py (storage/sql_list.py compiles them, so a filter means the same
thing here as in a chart). Times come back as aware datetimes in the project's zone.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from openpanel_lite.cache import Reader
from openpanel_lite.query import Filter
from openpanel_lite.reports.event_list import list_events
from openpanel_lite.storage import EventStore
from openpanel_lite.storage.columns import column_names
from openpanel_lite.storage.dialects import ParamKind
from openpanel_lite.storage.sql_list import EventListQuery

PER_PAGE = 50
MAX_PAGE = 10_000  # deep OFFSETs get slow; nobody pages this far by hand
MAX_NAMES = 200
# What a list row shows; the detail page reads every column.
LIST_COLUMNS: tuple[str, ...] = (
    *("id", "name", "created_at", "profile_id", "session_id", "device_id", "path", "origin"),
    *("referrer", "referrer_name", "country", "city", "region", "os", "browser", "device"),
    *("groups", "properties", "revenue", "duration"),
)
ALL_COLUMNS = column_names("events")


def to_local(value: datetime, zone: ZoneInfo) -> datetime:
    """A store timestamp (naive UTC) as an aware datetime in `zone`."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(zone)


class EventItem(msgspec.Struct, frozen=True, kw_only=True):
    """One event as the explorer shows it (strings from tracked data: templates escape them)."""

    id: str
    name: str
    created_at: datetime
    profile_id: str = ""
    session_id: str = ""
    device_id: str = ""
    path: str = ""
    origin: str = ""
    referrer: str = ""
    referrer_name: str = ""
    country: str = ""
    city: str = ""
    region: str = ""
    os: str = ""
    browser: str = ""
    device: str = ""
    groups: tuple[str, ...] = ()
    properties: dict[str, str] = {}
    revenue: int = 0
    duration: int = 0  # ms; only session_end carries one
    # Every other column, for the detail page (sdk, versions, brand, model, coordinates …).
    extra: dict[str, str] = {}

    @property
    def custom_properties(self) -> list[tuple[str, str]]:
        """Properties the site set, sorted; the SDK's reserved `__` keys are left to the detail page."""
        return sorted((k, v) for k, v in self.properties.items() if not k.startswith("__"))

    @property
    def sorted_properties(self) -> list[tuple[str, str]]:
        return sorted(self.properties.items())


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    page: int  # 1-based
    per_page: int
    items: list[EventItem]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first(self) -> int:
        """1-based number of the page's first row (0 when empty)."""
        return (self.page - 1) * self.per_page + 1 if self.items else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.per_page + len(self.items)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return str(value)


def event_item(row: dict[str, Any], zone: ZoneInfo) -> EventItem:
    """A store row (any subset of the columns holding at least id, name, created_at) as an EventItem."""
    known = set(EventItem.__struct_fields__) - {"extra"}
    fields = {k: v for k, v in row.items() if k in known}
    fields["id"] = str(row["id"])
    fields["created_at"] = to_local(row["created_at"], zone)
    fields["groups"] = tuple(row.get("groups") or ())
    fields["properties"] = dict(row.get("properties") or {})
    extra = {k: _text(v) for k, v in row.items() if k not in known and k != "project_id"}
    return EventItem(**fields, extra=extra)


def event_page(
    store: EventStore,
    project_id: str,
    timezone: str,
    *,
    names: Sequence[str] = (),
    filters: Sequence[Filter] = (),
    profile_id: str | None = None,
    session_id: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> EventPage:
    """Page `page` (1-based) of the project's events, newest first. QueryError for bad filters."""
    page = min(max(1, page), MAX_PAGE)
    q = EventListQuery(
        project_id=project_id,
        names=tuple(names),
        filters=tuple(filters),
        profile_id=profile_id,
        session_id=session_id,
        columns=LIST_COLUMNS,
        limit=per_page,
        offset=(page - 1) * per_page,
    )
    found = list_events(store, q)
    zone = ZoneInfo(timezone)
    items = [event_item(row, zone) for row in found.rows]
    return EventPage(total=found.total, page=page, per_page=per_page, items=items)


def event_detail(store: EventStore, project_id: str, event_id: str, timezone: str) -> EventItem | None:
    """One event with every column; None when the id is not a UUID or not an event of this project."""
    try:
        canonical = str(uuid.UUID(event_id))
    except ValueError:
        return None
    d = store.dialect
    sql = (
        f"SELECT {', '.join(ALL_COLUMNS)} FROM events "
        f"WHERE project_id = {d.param('project_id', ParamKind.STRING)} "
        f"AND id = {d.param('id', ParamKind.STRING)} LIMIT 1"
    )
    rows = store.fetch(sql, {"project_id": project_id, "id": canonical})
    if not rows:
        return None
    return event_item(dict(zip(ALL_COLUMNS, rows[0], strict=True)), ZoneInfo(timezone))


def event_names(reader: Reader, project_id: str) -> list[str]:
    """The project's event names, most frequent first (the explorer's name filter offers these)."""
    d = reader.dialect
    sql = (
        "SELECT name, count(*) AS n FROM events "
        f"WHERE project_id = {d.param('project_id', ParamKind.STRING)} "
        f"GROUP BY name ORDER BY n DESC, name LIMIT {d.param('limit', ParamKind.INT)}"
    )
    return [str(name) for name, _n in reader.fetch(sql, {"project_id": project_id, "limit": MAX_NAMES})]
