"""Session lifecycle in memory (openpanel-facts §3.4, §3.5): start, extend, boundary, reap.

Replaces upstream's Redis session blobs. Every change is written as versioned rows: (-1, v) cancels the
old state and (+1, v+1) adds the new one, so both stores aggregate sessions with sum(sign).
Deviation (§10.10): a session_end always carries its own session's fields, never the next event's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from openpanel_lite import ids
from openpanel_lite.ingest import identity
from openpanel_lite.ingest.page_visits import PageVisits
from openpanel_lite.ingest.view_times import ViewTimeline
from openpanel_lite.storage.rows import EventRow, PageViewRow, ProfileLink, SessionRow, ViewDurationRow

SCREEN_VIEW = "screen_view"
SESSION_START = "session_start"
SESSION_END = "session_end"
_UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
# Geo, device and referrer fields a session copies from its first event.
_COPIED_FROM_EVENT: tuple[str, ...] = (
    *("country", "region", "city", "longitude", "latitude"),
    *("device", "brand", "model", "browser", "browser_version", "os", "os_version"),
    *("referrer", "referrer_name", "referrer_type"),
)
_REFERRER_FIELDS = ("referrer", "referrer_name", "referrer_type")


@dataclass(slots=True)
class _Live:
    row: SessionRow
    # Wall-clock ms of the last event received for this session (the reaper's clock).
    wall_ms: int
    # row.ended_at in ms, kept beside it: every request asks "is this visit live?" (datetime math is slow).
    ended_ms: int = 0
    # Its screen views, for time on page and the Pages table's sessions; made at the first one.
    views: ViewTimeline | None = None
    visits: PageVisits | None = None

    def __post_init__(self) -> None:
        self.ended_ms = _ms(self.row.ended_at)

    def set_row(self, row: SessionRow) -> None:
        self.row = row
        self.ended_ms = _ms(row.ended_at)

    def viewed(self, event: EventRow, event_ms: int) -> tuple[list[ViewDurationRow], list[PageViewRow]]:
        """Time-on-page and Pages rows for a screen_view of this session (ingest.view_times,
        ingest.page_visits)."""
        if self.views is None or self.visits is None:
            self.views = ViewTimeline(self.row.project_id, self.row.id)
            self.visits = PageVisits(self.row.project_id, self.row.id)
        durations = self.views.add(event_ms, event.origin, event.path, event.created_at)
        return durations, self.visits.add(event, event_ms)


@dataclass(slots=True)
class SessionOutcome:
    """What one event did: its (possibly enriched) row plus rows to write alongside it."""

    kind: Literal["new", "extend", "boundary", "none", "attached"]
    event: EventRow
    events: list[EventRow] = field(default_factory=list)
    sessions: list[SessionRow] = field(default_factory=list)
    links: list[ProfileLink] = field(default_factory=list)
    durations: list[ViewDurationRow] = field(default_factory=list)
    page_views: list[PageViewRow] = field(default_factory=list)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _utms(event: EventRow) -> dict[str, str]:
    return {key: event.properties.get(f"__query.{key}", "") for key in _UTM_KEYS}


class SessionTracker:
    """Live sessions keyed by (project_id, device_id), plus identified profiles' current device."""

    def __init__(self, timeout_ms: int = identity.DEFAULT_SESSION_TIMEOUT_MS) -> None:
        self.timeout_ms = timeout_ms
        self._live: dict[tuple[str, str], _Live] = {}
        self._by_profile: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._live)

    def live_session(self, project_id: str, device_id: str, event_ms: int) -> str | None:
        """The id of the device's session if its last event is within the timeout of event_ms."""
        live = self._live.get((project_id, device_id))
        if live is None or event_ms - live.ended_ms > self.timeout_ms:
            return None
        return live.row.id

    def live_checker(self, project_id: str, event_ms: int) -> Callable[[str], bool]:
        """For identity.resolve_device: does this candidate device id have a live session?"""
        return lambda device_id: self.live_session(project_id, device_id, event_ms) is not None

    def session_id_for(self, project_id: str, device_id: str, event_ms: int) -> str:
        """The live session id, else the deterministic bucket id (what /track answers)."""
        return self.live_session(project_id, device_id, event_ms) or identity.session_id(
            project_id, device_id, event_ms, self.timeout_ms
        )

    # ------------------------------------------------------------------------------------------
    # events

    def client_event(self, event: EventRow, wall_ms: int) -> SessionOutcome:
        """A browser/app event (non-server UA, not backdated): start, extend or split its session."""
        if event.name in (SESSION_START, SESSION_END):
            return SessionOutcome("none", event)
        key = (event.project_id, event.device_id)
        event_ms = _ms(event.created_at)
        live = self._live.get(key)
        out_events: list[EventRow] = []
        out_sessions: list[SessionRow] = []
        links: list[ProfileLink] = []
        kind: Literal["new", "boundary", "extend"]
        if live is not None and event_ms - live.ended_ms <= self.timeout_ms:
            kind = "extend"
            new_row = self._extended(live.row, event)
            if live.row.profile_id == live.row.device_id and new_row.profile_id != live.row.device_id:
                links.append(
                    ProfileLink(
                        project_id=new_row.project_id,
                        session_id=new_row.id,
                        device_id=new_row.device_id,
                        profile_id=new_row.profile_id,
                        since=new_row.created_at,
                        until=event.created_at,
                    )
                )
            out_sessions += [msgspec.structs.replace(live.row, sign=-1), new_row]
            live.set_row(new_row)
            live.wall_ms = max(live.wall_ms, wall_ms)
            event = self._join(event, new_row)
        else:
            kind = "new"
            if live is not None:
                kind = "boundary"
                out_events.append(self.session_end_event(live.row))
            sid = event.session_id or identity.session_id(
                event.project_id, event.device_id, event_ms, self.timeout_ms
            )
            if live is not None and sid == live.row.id:
                # Same deterministic bucket as the closed session: a new visit needs a fresh id.
                sid = identity.session_id(
                    event.project_id, event.device_id + ":next", event_ms, self.timeout_ms
                )
            event = msgspec.structs.replace(event, session_id=sid)
            new_row = self._started(event)
            out_sessions.append(new_row)
            live = self._live[key] = _Live(new_row, wall_ms)
            out_events.append(
                msgspec.structs.replace(
                    event,
                    id=ids.uuid4(),
                    name=SESSION_START,
                    created_at=event.created_at - timedelta(milliseconds=100),
                    revenue=0,
                )
            )
        if event.profile_id and event.profile_id != event.device_id:
            self._by_profile[(event.project_id, event.profile_id)] = event.device_id
        durations, page_views = live.viewed(event, event_ms) if event.name == SCREEN_VIEW else ([], [])
        return SessionOutcome(kind, event, out_events, out_sessions, links, durations, page_views)

    def server_event(self, event: EventRow, profile_id: str | None, event_ms: int) -> SessionOutcome:
        """A server-side event: attach to the profile's live browser session if there is one (§3.5)."""
        if profile_id:
            device = self._by_profile.get((event.project_id, profile_id))
            live = self._live.get((event.project_id, device)) if device else None
            if live is not None and event_ms - live.ended_ms <= self.timeout_ms:
                row = live.row
                attached = msgspec.structs.replace(
                    event,
                    device_id=row.device_id,
                    session_id=row.id,
                    referrer=row.referrer,
                    referrer_name=row.referrer_name,
                    referrer_type=row.referrer_type,
                    path=event.path or row.exit_path,
                    origin=event.origin or row.exit_origin,
                    **{k: getattr(row, k) for k in _COPIED_FROM_EVENT if not k.startswith("referrer")},
                )
                timed = live.viewed(attached, event_ms) if attached.name == SCREEN_VIEW else ([], [])
                return SessionOutcome("attached", attached, durations=timed[0], page_views=timed[1])
        detached = msgspec.structs.replace(event, device_id="", session_id="", profile_id=profile_id or "")
        return SessionOutcome("none", detached)

    def reap(self, wall_ms: int) -> tuple[list[EventRow], list[SessionRow]]:
        """Close sessions whose last event arrived more than the timeout ago: their session_end events."""
        ended: list[EventRow] = []
        for key, live in list(self._live.items()):
            if wall_ms - live.wall_ms > self.timeout_ms:
                ended.append(self.session_end_event(live.row))
                del self._live[key]
                self._forget_profile(live.row)
        return ended, []

    def restore(self, rows: list[SessionRow], wall_ms: int) -> None:
        """Load still-open sessions (latest +1 version of each) after a restart."""
        for row in rows:
            key = (row.project_id, row.device_id)
            current = self._live.get(key)
            if current is None or row.ended_at > current.row.ended_at:
                # Their wall clock restarts now, so a restart never closes a visit early.
                self._live[key] = _Live(row, wall_ms)
                if row.profile_id and row.profile_id != row.device_id:
                    self._by_profile[(row.project_id, row.profile_id)] = row.device_id

    def restore_views(self, views: list[EventRow]) -> None:
        """Load the resumed sessions' stored screen views (oldest first), so the first view after a
        restart times and links the ones before it; their rows are stored already."""
        by_session = {(live.row.project_id, live.row.id): live for live in self._live.values()}
        for view in views:
            live = by_session.get((view.project_id, view.session_id))
            if live is not None:
                live.viewed(view, _ms(view.created_at))

    def close_all(self) -> list[EventRow]:
        ended = [self.session_end_event(live.row) for live in self._live.values()]
        self._live.clear()
        self._by_profile.clear()
        return ended

    # ------------------------------------------------------------------------------------------
    # rows

    def session_end_event(self, row: SessionRow) -> EventRow:
        return EventRow(
            id=ids.uuid4(),
            name=SESSION_END,
            project_id=row.project_id,
            device_id=row.device_id,
            profile_id=row.profile_id,
            session_id=row.id,
            groups=row.groups,
            path=row.exit_path,
            origin=row.exit_origin,
            referrer=row.referrer,
            referrer_name=row.referrer_name,
            referrer_type=row.referrer_type,
            duration=row.duration,
            properties={"__bounce": "true" if row.is_bounce else "false"},
            created_at=row.ended_at + timedelta(milliseconds=1000),
            **{k: getattr(row, k) for k in _COPIED_FROM_EVENT if not k.startswith("referrer")},
        )

    def _started(self, event: EventRow) -> SessionRow:
        is_view = event.name == SCREEN_VIEW
        copied: dict[str, object] = {k: getattr(event, k) for k in _COPIED_FROM_EVENT}
        row = SessionRow(
            id=event.session_id,
            project_id=event.project_id,
            profile_id=event.profile_id or event.device_id,
            device_id=event.device_id,
            groups=event.groups,
            created_at=event.created_at,
            ended_at=event.created_at,
            is_bounce=True,
            entry_origin=event.origin,
            entry_path=event.path,
            exit_origin=event.origin,
            exit_path=event.path,
            screen_view_count=1 if is_view else 0,
            event_count=0 if is_view else 1,
            revenue=float(event.revenue) if event.name == "revenue" else 0.0,
            duration=0,
            sign=1,
            version=1,
        )
        return msgspec.structs.replace(row, **_utms(event), **copied)

    def _extended(self, row: SessionRow, event: EventRow) -> SessionRow:
        changes: dict[str, object] = {"version": row.version + 1, "sign": 1}
        if event.created_at >= row.ended_at:
            changes.update(ended_at=event.created_at, exit_path=event.path, exit_origin=event.origin)
        if event.created_at < row.created_at:
            changes.update(created_at=event.created_at, entry_path=event.path, entry_origin=event.origin)
        created = changes.get("created_at", row.created_at)
        ended = changes.get("ended_at", row.ended_at)
        assert isinstance(created, datetime) and isinstance(ended, datetime)
        changes["duration"] = max(0, _ms(ended) - _ms(created))
        if event.name == SCREEN_VIEW and event.path:
            views = row.screen_view_count + 1
            changes["screen_view_count"] = views
            if views > 1:
                changes["is_bounce"] = False
        elif event.name != SCREEN_VIEW:
            changes["event_count"] = row.event_count + 1
        if event.name == "revenue" and event.revenue:
            changes["revenue"] = row.revenue + float(event.revenue)
        if event.profile_id and event.profile_id != event.device_id:
            changes["profile_id"] = event.profile_id
        if event.groups:
            changes["groups"] = tuple(dict.fromkeys((*row.groups, *event.groups)))
        return msgspec.structs.replace(row, **changes)

    @staticmethod
    def _join(event: EventRow, row: SessionRow) -> EventRow:
        """The event as part of the live session: its id, and the visit's entry referrer (later
        pages' own referrers are internal navigation)."""
        changes: dict[str, object] = {k: v for k in _REFERRER_FIELDS if (v := getattr(row, k))}
        return msgspec.structs.replace(event, session_id=row.id, **changes)

    def _forget_profile(self, row: SessionRow) -> None:
        key = (row.project_id, row.profile_id)
        if self._by_profile.get(key) == row.device_id:
            del self._by_profile[key]
