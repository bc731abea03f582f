"""Rows as ingest hands them to the event store: one Struct per table, fields in the order of
storage/columns.py (a test holds them equal), and the WriteBatch that carries them. Timestamps are
UTC: naive ones are taken as UTC, aware ones converted; the store keeps milliseconds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

import msgspec


class EventRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    sdk_name: str = ""
    sdk_version: str = ""
    device_id: str = ""
    profile_id: str = ""
    project_id: str
    session_id: str = ""
    groups: tuple[str, ...] = ()
    path: str = ""
    origin: str = ""
    referrer: str = ""
    referrer_name: str = ""
    referrer_type: str = ""
    # Integer, cents by convention; only `revenue` events carry one.
    revenue: int = 0
    # Milliseconds; only session_end carries one.
    duration: int = 0
    properties: dict[str, str] = {}
    created_at: datetime
    country: str = ""
    city: str = ""
    region: str = ""
    longitude: float | None = None
    latitude: float | None = None
    os: str = ""
    os_version: str = ""
    browser: str = ""
    browser_version: str = ""
    device: str = ""
    brand: str = ""
    model: str = ""
    imported_at: datetime | None = None


class SessionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a session: sign=+1 adds this state, sign=-1 cancels an earlier one."""

    id: str
    project_id: str
    profile_id: str = ""
    device_id: str = ""
    groups: tuple[str, ...] = ()
    created_at: datetime
    ended_at: datetime
    is_bounce: bool = True
    entry_origin: str = ""
    entry_path: str = ""
    exit_origin: str = ""
    exit_path: str = ""
    screen_view_count: int = 0
    revenue: float = 0.0
    event_count: int = 0
    # Milliseconds.
    duration: int = 0
    country: str = ""
    region: str = ""
    city: str = ""
    longitude: float | None = None
    latitude: float | None = None
    device: str = ""
    brand: str = ""
    model: str = ""
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    utm_medium: str = ""
    utm_source: str = ""
    utm_campaign: str = ""
    utm_content: str = ""
    utm_term: str = ""
    referrer: str = ""
    referrer_name: str = ""
    referrer_type: str = ""
    sign: int = 1
    version: int = 1


class ProfileRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    is_external: bool = False
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    avatar: str = ""
    properties: dict[str, str] = {}
    project_id: str
    groups: tuple[str, ...] = ()
    created_at: datetime
    last_seen_at: datetime


class GroupRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    type: str = ""
    name: str = ""
    properties: dict[str, str] = {}
    created_at: datetime
    version: int = 1
    deleted: int = 0


class BotEventRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    project_id: str
    name: str
    type: str
    path: str = ""
    created_at: datetime


class ViewDurationRow(msgspec.Struct, frozen=True, kw_only=True):
    """A page view's time on page: milliseconds from a screen_view to the next later screen_view of
    its session (upstream stores it in the view's `duration`, holding each view back until the next
    one arrives; this store writes every view at once and adds this row when the next is known).

    sign=-1 cancels an earlier row when an out-of-order view lands between two known ones; readers
    aggregate with sum(sign * duration) / sum(sign).
    """

    project_id: str
    session_id: str
    origin: str = ""
    path: str = ""
    # The view's own time (the row belongs to the range the view is in).
    created_at: datetime
    duration: int
    sign: int = 1


# previous_at of a view with no earlier view of its page in its session.
NO_EARLIER_VIEW = datetime(1970, 1, 1, tzinfo=UTC)


class PageViewRow(msgspec.Struct, frozen=True, kw_only=True):
    """One screen_view, for the Pages table: `previous_at` is the time of the previous view of the same
    page (origin, path) in the same session (NO_EARLIER_VIEW when none), so the sessions that viewed a
    page in [start, end) are its views in the range whose previous_at < start; no distinct count.

    sign=-1 cancels an earlier row when an out-of-order view lands before a later view of its page.
    Views without a session (backdated, server-side) have session_id '' and count as page views only.
    """

    project_id: str
    session_id: str = ""
    profile_id: str = ""
    origin: str = ""
    path: str = ""
    created_at: datetime
    previous_at: datetime = NO_EARLIER_VIEW
    sign: int = 1


class ProfileLink(msgspec.Struct, frozen=True, kw_only=True):
    """A visitor identified mid-visit: the session's earlier anonymous events get the profile id.

    Beyond upstream (which keeps pre-identify events on the device id), so an identified visit
    counts once. [since, until] bounds the rewrite to the visit up to the identification, so the
    result does not depend on how events are batched.
    """

    project_id: str
    session_id: str
    device_id: str
    profile_id: str
    since: datetime
    # The identifying event's time: later anonymous events (another tab, a server call) stay as they are.
    until: datetime


class WriteBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one flush writes, committed in one transaction together with the spool mark.

    `spool_watermark` is the highest durable-spool id whose rows this batch completes; None leaves
    the stored mark alone (e.g. rows that did not come from the spool).
    """

    events: Sequence[EventRow] = ()
    profiles: Sequence[ProfileRow] = ()
    sessions: Sequence[SessionRow] = ()
    groups: Sequence[GroupRow] = ()
    bots: Sequence[BotEventRow] = ()
    view_durations: Sequence[ViewDurationRow] = ()
    page_views: Sequence[PageViewRow] = ()
    # Applied after the rows are inserted, in the same transaction, so rows of this batch are covered.
    profile_links: Sequence[ProfileLink] = ()
    spool_watermark: int | None = None

    def tables(self) -> dict[str, Sequence[msgspec.Struct]]:
        """The rows keyed by the table they go to."""
        return {
            "events": self.events,
            "profiles": self.profiles,
            "sessions": self.sessions,
            "groups": self.groups,
            "events_bots": self.bots,
            "view_durations": self.view_durations,
            "page_views": self.page_views,
        }

    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables().values())


ROW_TYPES: dict[str, type[msgspec.Struct]] = {
    "events": EventRow,
    "profiles": ProfileRow,
    "sessions": SessionRow,
    "groups": GroupRow,
    "events_bots": BotEventRow,
    "view_durations": ViewDurationRow,
    "page_views": PageViewRow,
}
