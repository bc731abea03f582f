"""The sessions explorer (openpanel-facts §5.5): a page of sessions with upstream's columns, and one
session with its event timeline.

Sessions are versioned rows (§3.4): every change adds (-1, v) cancelling the old state and (+1, v+1).
A session's current state is its newest version whose rows sum to sign 1; older versions, and
versions cancelled without a successor, are not shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from openpanel_lite.reports.events import MAX_PAGE, PER_PAGE, EventItem, event_page, to_local
from openpanel_lite.storage import EventStore
from openpanel_lite.storage.columns import column_names
from openpanel_lite.storage.dialects import ParamKind

TIMELINE_LIMIT = 500
_COLUMNS = column_names("sessions")


class SessionItem(msgspec.Struct, frozen=True, kw_only=True):
    """A session's current version; strings come from tracked events (templates escape them)."""

    id: str
    profile_id: str
    device_id: str
    created_at: datetime  # aware, in the project's zone
    ended_at: datetime
    is_bounce: bool
    entry_origin: str
    entry_path: str
    exit_origin: str
    exit_path: str
    screen_view_count: int
    event_count: int
    revenue: float  # cents
    duration: int  # ms
    country: str
    region: str
    city: str
    device: str
    brand: str
    model: str
    browser: str
    browser_version: str
    os: str
    os_version: str
    referrer: str
    referrer_name: str
    referrer_type: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    groups: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.duration / 1000

    @property
    def location(self) -> str:
        """'London, GB' / 'GB' / '' (city first, as upstream's list shows it)."""
        return ", ".join(part for part in (self.city, self.country) if part)


class SessionPage(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    page: int
    per_page: int
    items: list[SessionItem]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.items else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.per_page + len(self.items)


class SessionDetail(msgspec.Struct, frozen=True, kw_only=True):
    session: SessionItem
    events: list[EventItem]  # oldest first
    total_events: int  # all stored events of the session (the timeline shows at most TIMELINE_LIMIT)


def _current_sql(store: EventStore, where: list[str]) -> str:
    """Rows of the current versions, restricted by `where` (conditions on alias s)."""
    d = store.dialect
    project = d.param("project_id", ParamKind.STRING)
    cols = ", ".join(f"s.{c}" for c in _COLUMNS)
    conditions = " AND ".join([f"s.project_id = {project}", "s.sign = 1", *where])
    # A version is live when its rows sum to 1; the newest live version is the session's state.
    return f"""-- sql
        WITH live AS (
            SELECT id, version FROM sessions WHERE project_id = {project}
            GROUP BY id, version HAVING sum(sign) = 1
        ), newest AS (SELECT id, max(version) AS version FROM live GROUP BY id)
        SELECT {cols} FROM sessions AS s JOIN newest AS n ON s.id = n.id AND s.version = n.version
        WHERE {conditions}"""


def _item(row: tuple[Any, ...], zone: ZoneInfo) -> SessionItem:
    values = dict(zip(_COLUMNS, row, strict=True))
    fields = {k: v for k, v in values.items() if k in SessionItem.__struct_fields__}
    fields["created_at"] = to_local(values["created_at"], zone)
    fields["ended_at"] = to_local(values["ended_at"], zone)
    fields["groups"] = tuple(values["groups"] or ())
    return SessionItem(**fields)


def session_page(
    store: EventStore,
    project_id: str,
    timezone: str,
    *,
    profile_id: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> SessionPage:
    """Page `page` (1-based) of sessions, newest start first; only the profile's when profile_id is set."""
    d = store.dialect
    page = min(max(1, page), MAX_PAGE)
    params: dict[str, object] = {"project_id": project_id}
    where: list[str] = []
    if profile_id is not None:
        where.append(f"s.profile_id = {d.param('profile_id', ParamKind.STRING)}")
        params["profile_id"] = profile_id
    current = _current_sql(store, where)
    total = int(store.fetch(f"SELECT count(*) FROM ({current}) AS c", params)[0][0])
    limit, offset = d.param("limit", ParamKind.INT), d.param("offset", ParamKind.INT)
    # Sessions are not unique by start time: the id breaks ties so pages never overlap.
    sql = f"{current}\nORDER BY s.created_at DESC, s.id DESC LIMIT {limit} OFFSET {offset}"
    rows = store.fetch(sql, {**params, "limit": per_page, "offset": (page - 1) * per_page})
    zone = ZoneInfo(timezone)
    return SessionPage(total=total, page=page, per_page=per_page, items=[_item(r, zone) for r in rows])


def session_detail(
    store: EventStore, project_id: str, session_id: str, timezone: str
) -> SessionDetail | None:
    """The session's current state and its events, oldest first; None for an unknown id."""
    d = store.dialect
    sql = _current_sql(store, [f"s.id = {d.param('session_id', ParamKind.STRING)}"])
    rows = store.fetch(sql, {"project_id": project_id, "session_id": session_id})
    if not rows:
        return None
    zone = ZoneInfo(timezone)
    events = event_page(store, project_id, timezone, session_id=session_id, per_page=TIMELINE_LIMIT)
    # The list is newest first; a timeline reads top to bottom in the order things happened.
    return SessionDetail(
        session=_item(rows[0], zone), events=list(reversed(events.items)), total_events=events.total
    )
