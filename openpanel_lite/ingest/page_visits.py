"""The Pages table's sessions without a distinct count (openpanel-facts §5.2 "Top pages": sessions =
the sessions that viewed the page), decided at ingest.

Every screen_view gets a PageViewRow whose `previous_at` is the time of the previous view of the same
page (origin, path) in the same session. A session viewed a page in [start, end) exactly when one of
its views of the page in the range has previous_at < start, so a report sums narrow rows instead of
counting distinct session ids over every page view of the range (the most expensive part of the
overview). Views at the same millisecond are ordered by arrival: one of them counts.

A view arriving before a later view of its page (several tabs, retries) re-links that later view with
a sign=-1 row cancelling its old row, so the signed sums always match the rule over the views received.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from openpanel_lite.storage.rows import NO_EARLIER_VIEW, EventRow, PageViewRow

# Views remembered per page per live session; past it the oldest are forgotten and a view older than
# every remembered one gets no row (hundreds of views of one page in one visit is a script or a kiosk).
MAX_PAGE_VIEWS = 512


@dataclass(slots=True)
class _PageTimes:
    """One page's views in one session, in time order (ties in arrival order)."""

    ms: list[int] = field(default_factory=list)
    rows: list[PageViewRow] = field(default_factory=list)
    forgot: bool = False


@dataclass(slots=True)
class PageVisits:
    """One live session's views per page."""

    project_id: str
    session_id: str
    pages: dict[tuple[str, str], _PageTimes] = field(default_factory=dict)

    def add(self, event: EventRow, at_ms: int) -> list[PageViewRow]:
        """Record a screen_view of this session; the rows that keep the Pages sums exact."""
        key = (event.origin, event.path)
        times = self.pages.get(key)
        if times is None:
            times = self.pages[key] = _PageTimes()
        i = bisect_right(times.ms, at_ms)
        if i == 0 and times.forgot:
            return []
        previous = times.rows[i - 1].created_at if i else NO_EARLIER_VIEW
        row = PageViewRow(
            project_id=self.project_id,
            session_id=self.session_id,
            profile_id=event.profile_id,
            origin=event.origin,
            path=event.path,
            created_at=event.created_at,
            previous_at=previous,
        )
        out = [row]
        if i < len(times.ms):
            # A later view of the page now follows this one: cancel its row and link it here.
            later = times.rows[i]
            relinked = msgspec.structs.replace(later, previous_at=event.created_at)
            out += [msgspec.structs.replace(later, sign=-1), relinked]
            times.rows[i] = relinked
        times.ms.insert(i, at_ms)
        times.rows.insert(i, row)
        if len(times.ms) > MAX_PAGE_VIEWS:
            del times.ms[0], times.rows[0]
            times.forgot = True
        return out


def unsessioned_view(event: EventRow) -> PageViewRow:
    """The row of a screen_view outside any session (backdated or server-side): a page view only."""
    return PageViewRow(
        project_id=event.project_id,
        profile_id=event.profile_id,
        origin=event.origin,
        path=event.path,
        created_at=event.created_at,
    )


def page_views_of(events: Iterable[EventRow]) -> list[PageViewRow]:
    """The Pages rows ingest writes for these events received in this order: for rows that reach a
    store around ingest (tests, benchmark data, imports)."""
    visits: dict[tuple[str, str], PageVisits] = {}
    rows: list[PageViewRow] = []
    for e in events:
        if e.name != "screen_view":
            continue
        if not e.session_id:
            rows.append(unsessioned_view(e))
            continue
        key = (e.project_id, e.session_id)
        session = visits.get(key)
        if session is None:
            session = visits[key] = PageVisits(e.project_id, e.session_id)
        rows += session.add(e, int(e.created_at.timestamp() * 1000))
    return rows
