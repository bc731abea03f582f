"""The profiles explorer (openpanel-facts §3.11, §5.6): lists by tab (Identified, Anonymous, Power
users) with a search, and one profile's overview metrics, latest events, sessions and properties.

Profiles are upserted rows; the newest row per id by last_seen_at is current (ReplacingMergeTree).
Anonymous profiles have id = device id and is_external = false. Power users are the profiles with the
most events (session_start / session_end excluded, like the Events metric), identified or not.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from openpanel_lite.ingest.state_loaders import load_profile
from openpanel_lite.reports.events import MAX_PAGE, PER_PAGE, EventItem, event_page, to_local
from openpanel_lite.reports.sessions import SessionItem, session_page
from openpanel_lite.storage import EventStore
from openpanel_lite.storage.dialects import Dialect, ParamKind

LATEST = 10  # events and sessions on the profile page
_SYNTHETIC = "('session_start', 'session_end')"
_LIST_COLUMNS = (
    "id",
    "is_external",
    "first_name",
    "last_name",
    "email",
    "properties",
    "created_at",
    "last_seen_at",
)


class Tab(StrEnum):
    IDENTIFIED = "identified"
    ANONYMOUS = "anonymous"
    POWER_USERS = "power-users"


class ProfileItem(msgspec.Struct, frozen=True, kw_only=True):
    """A profile row as the list shows it; `events` is filled on the power users tab only."""

    id: str
    is_external: bool = False
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    properties: dict[str, str] = {}
    created_at: datetime | None = None  # None: events under this id but no profile row
    last_seen_at: datetime | None = None
    events: int | None = None

    @property
    def name(self) -> str:
        """'First Last', else the email, else the id."""
        full = f"{self.first_name} {self.last_name}".strip()
        return full or self.email or self.id

    def prop(self, key: str) -> str:
        return self.properties.get(key, "")


class ProfilePage(msgspec.Struct, frozen=True, kw_only=True):
    tab: Tab
    search: str
    total: int
    page: int
    per_page: int
    items: list[ProfileItem]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.items else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.per_page + len(self.items)


class ProfileMetrics(msgspec.Struct, frozen=True, kw_only=True):
    first_seen: datetime | None
    last_seen: datetime | None
    sessions: int
    events: int  # all but session_start / session_end
    page_views: int
    avg_session_duration: float  # seconds, over sessions longer than 0 ms (as the overview)
    bounce_rate: float  # percent of sessions
    revenue: int  # cents, the sum of `revenue` events

    @property
    def events_per_session(self) -> float:
        return round(self.events / self.sessions, 1) if self.sessions else 0.0


class ProfileDetail(msgspec.Struct, frozen=True, kw_only=True):
    profile: ProfileItem
    metrics: ProfileMetrics
    events: list[EventItem]  # newest first
    sessions: list[SessionItem]  # newest first

    @property
    def properties(self) -> list[tuple[str, str]]:
        return sorted(self.profile.properties.items())


def _latest_sql(d: Dialect) -> str:
    """Each profile's newest row (ties on last_seen_at broken by created_at, then the row order)."""
    project = d.param("project_id", ParamKind.STRING)
    return f"""SELECT {", ".join(_LIST_COLUMNS)} FROM (
            SELECT {", ".join(_LIST_COLUMNS)}, row_number() OVER (
                PARTITION BY id ORDER BY last_seen_at DESC, created_at DESC) AS rn
            FROM profiles WHERE project_id = {project}
        ) AS ranked WHERE rn = 1"""


def _search_sql(d: Dialect, alias: str, id_column: str) -> str:
    value = d.param("search", ParamKind.STRING)
    fields = [id_column] + [f"coalesce({alias}.{c}, '')" for c in ("first_name", "last_name", "email")]
    return "(" + " OR ".join(d.contains_ci.format(expr=f, value=value) for f in fields) + ")"


def _item(row: tuple[Any, ...], zone: ZoneInfo, events: int | None = None) -> ProfileItem:
    values = dict(zip(_LIST_COLUMNS, row, strict=True))
    created, seen = values["created_at"], values["last_seen_at"]
    return ProfileItem(
        id=str(values["id"]),
        is_external=bool(values["is_external"]),
        first_name=values["first_name"] or "",
        last_name=values["last_name"] or "",
        email=values["email"] or "",
        properties=dict(values["properties"] or {}),
        created_at=to_local(created, zone) if created is not None else None,
        last_seen_at=to_local(seen, zone) if seen is not None else None,
        events=events,
    )


def profile_page(
    store: EventStore,
    project_id: str,
    timezone: str,
    *,
    tab: Tab = Tab.IDENTIFIED,
    search: str = "",
    page: int = 1,
    per_page: int = PER_PAGE,
) -> ProfilePage:
    """Page `page` of a tab: identified/anonymous by last seen (newest first), power users by events."""
    d = store.dialect
    page = min(max(1, page), MAX_PAGE)
    search = search.strip()
    params: dict[str, object] = {"project_id": project_id}
    if search:
        params["search"] = search
    limit, offset = d.param("limit", ParamKind.INT), d.param("offset", ParamKind.INT)
    paging = {"limit": per_page, "offset": (page - 1) * per_page}
    zone = ZoneInfo(timezone)
    cols = ", ".join(f"p.{c}" for c in _LIST_COLUMNS[1:])
    if tab is Tab.POWER_USERS:
        project = d.param("project_id", ParamKind.STRING)
        # Events whose profile has no row (a server SDK's profileId never identified) still count.
        base = f"""-- sql
            WITH counts AS (
                SELECT profile_id AS id, count(*) AS events FROM events
                WHERE project_id = {project} AND profile_id <> '' AND name NOT IN {_SYNTHETIC}
                GROUP BY profile_id
            ), latest AS ({_latest_sql(d)})
            SELECT c.id, {cols}, c.events FROM counts AS c LEFT JOIN latest AS p ON p.id = c.id"""
        where = f"\nWHERE {_search_sql(d, 'p', 'c.id')}" if search else ""
        total = int(store.fetch(f"SELECT count(*) FROM ({base}{where}) AS t", params)[0][0])
        rows = store.fetch(
            f"{base}{where}\nORDER BY c.events DESC, c.id LIMIT {limit} OFFSET {offset}", {**params, **paging}
        )
        items = [_item(r[:-1], zone, int(r[-1])) for r in rows]
    else:
        kind = "p.is_external" if tab is Tab.IDENTIFIED else "NOT p.is_external"
        conditions = [kind] + ([_search_sql(d, "p", "p.id")] if search else [])
        base = f"-- sql\nSELECT p.id, {cols} FROM ({_latest_sql(d)}) AS p\nWHERE {' AND '.join(conditions)}"
        total = int(store.fetch(f"SELECT count(*) FROM ({base}) AS t", params)[0][0])
        rows = store.fetch(
            f"{base}\nORDER BY p.last_seen_at DESC, p.id LIMIT {limit} OFFSET {offset}", {**params, **paging}
        )
        items = [_item(r, zone) for r in rows]
    return ProfilePage(tab=tab, search=search, total=total, page=page, per_page=per_page, items=items)


def _metrics(store: EventStore, project_id: str, profile_id: str, zone: ZoneInfo) -> ProfileMetrics:
    d = store.dialect
    project, pid = d.param("project_id", ParamKind.STRING), d.param("profile_id", ParamKind.STRING)
    params = {"project_id": project_id, "profile_id": profile_id}
    events_sql = f"""-- sql
        SELECT min(created_at), max(created_at),
            {d.count_if.format(cond=f"name NOT IN {_SYNTHETIC}")},
            {d.count_if.format(cond="name = 'screen_view'")},
            coalesce({d.sum_if.format(expr="revenue", cond="name = 'revenue'")}, 0)
        FROM events WHERE project_id = {project} AND profile_id = {pid}"""
    first, last, events, views, revenue = store.fetch(events_sql, params)[0]
    # Per session, sum(sign * x) over the rows of this profile is x of its current version: a
    # version pair (+1, -1) cancels, and versions from before identification carry the device id.
    sessions_sql = f"""-- sql
        WITH current AS (
            SELECT id, sum(sign * CASE WHEN is_bounce THEN 1 ELSE 0 END) AS bounced,
                sum(sign * duration) AS duration
            FROM sessions WHERE project_id = {project} AND profile_id = {pid}
            GROUP BY id HAVING sum(sign) > 0
        )
        SELECT count(*), coalesce(sum(bounced), 0),
            coalesce({d.sum_if.format(expr="duration", cond="duration > 0")}, 0),
            {d.count_if.format(cond="duration > 0")}
        FROM current"""
    sessions, bounced, duration, timed = store.fetch(sessions_sql, params)[0]
    return ProfileMetrics(
        first_seen=to_local(first, zone) if first is not None else None,
        last_seen=to_local(last, zone) if last is not None else None,
        sessions=int(sessions),
        events=int(events),
        page_views=int(views),
        avg_session_duration=round(float(duration) / int(timed), 2) / 1000 if timed else 0.0,
        bounce_rate=round(int(bounced) * 100 / int(sessions), 2) if sessions else 0.0,
        revenue=int(revenue),
    )


def profile_detail(
    store: EventStore, project_id: str, profile_id: str, timezone: str
) -> ProfileDetail | None:
    """The profile page; None when the id has neither a profile row nor events."""
    zone = ZoneInfo(timezone)
    row = load_profile(store, project_id, profile_id)
    metrics = _metrics(store, project_id, profile_id, zone)
    if row is None and metrics.first_seen is None:
        return None
    if row is not None:
        profile = ProfileItem(
            id=row.id,
            is_external=row.is_external,
            first_name=row.first_name,
            last_name=row.last_name,
            email=row.email,
            properties=dict(row.properties),
            created_at=row.created_at.astimezone(zone),
            last_seen_at=row.last_seen_at.astimezone(zone),
        )
    else:
        profile = ProfileItem(id=profile_id)
    events = event_page(store, project_id, timezone, profile_id=profile_id, per_page=LATEST).items
    sessions = session_page(store, project_id, timezone, profile_id=profile_id, per_page=LATEST).items
    return ProfileDetail(profile=profile, metrics=metrics, events=events, sessions=sessions)
