"""Time on page, decided at ingest (openpanel-facts §3.4 "time on page", §5.7 Pages columns).

A page view's time is the milliseconds to the next later screen_view of its session; views at the
same millisecond share their next one. Upstream holds each session's last screen_view back in Redis
and writes it with `duration` once the next arrives. Here every view is written (and visible) at
once, and a ViewDurationRow follows as soon as the view's next one is known, so a report averages a
narrow table instead of running a window over every page view of the range.

Views may arrive out of order (several tabs, retries, batched SDKs): a view landing between two
known ones re-times the earlier one with a sign=-1 row cancelling its old duration, so the sum of
signed rows always equals the rule above over the views received so far.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from openpanel_lite.storage.rows import EventRow, ViewDurationRow

# Distinct view times remembered per live session. Past it the oldest are forgotten: a view older
# than every remembered one then gets no row (a session with this many views is a script or a kiosk).
MAX_VIEW_TIMES = 512


@dataclass(frozen=True, slots=True)
class _Page:
    origin: str
    path: str
    created_at: datetime


@dataclass(slots=True)
class ViewTimeline:
    """One live session's screen views: their distinct times in order, and the views at each."""

    project_id: str
    session_id: str
    times: list[int] = field(default_factory=list)
    pages: dict[int, list[_Page]] = field(default_factory=dict)
    forgot: bool = False

    def add(self, at_ms: int, origin: str, path: str, created_at: datetime) -> list[ViewDurationRow]:
        """Record a view; the rows that keep the session's time-on-page sums exact."""
        page = _Page(origin, path, created_at)
        times = self.times
        if not times or at_ms > times[-1]:
            # The usual case, a view after every other: only the latest views get their time.
            timed = [self._row(p, at_ms - times[-1]) for p in self.pages[times[-1]]] if times else []
            times.append(at_ms)
            self.pages[at_ms] = [page]
            self._trim()
            return timed
        i = bisect_left(times, at_ms)
        if i < len(times) and times[i] == at_ms:
            self.pages[at_ms].append(page)
            return [self._row(page, times[i + 1] - at_ms)] if i + 1 < len(times) else []
        if i == 0 and self.forgot:
            return []
        rows: list[ViewDurationRow] = []
        after = times[i] if i < len(times) else None
        if i > 0:
            before = times[i - 1]
            for earlier in self.pages[before]:
                if after is not None:
                    rows.append(self._row(earlier, after - before, -1))
                rows.append(self._row(earlier, at_ms - before))
        if after is not None:
            rows.append(self._row(page, after - at_ms))
        times.insert(i, at_ms)
        self.pages[at_ms] = [page]
        self._trim()
        return rows

    def _trim(self) -> None:
        if len(self.times) > MAX_VIEW_TIMES:
            del self.pages[self.times.pop(0)]
            self.forgot = True

    def _row(self, page: _Page, duration: int, sign: int = 1) -> ViewDurationRow:
        return ViewDurationRow(
            project_id=self.project_id,
            session_id=self.session_id,
            origin=page.origin,
            path=page.path,
            created_at=page.created_at,
            duration=duration,
            sign=sign,
        )


def durations_of(events: Iterable[EventRow]) -> list[ViewDurationRow]:
    """The time-on-page rows ingest writes for these events received in this order: for rows that
    reach a store around ingest (tests, benchmark data, imports)."""
    timelines: dict[tuple[str, str], ViewTimeline] = {}
    rows: list[ViewDurationRow] = []
    for e in events:
        if e.name != "screen_view" or not e.session_id:
            continue
        key = (e.project_id, e.session_id)
        timeline = timelines.get(key)
        if timeline is None:
            timeline = timelines[key] = ViewTimeline(e.project_id, e.session_id)
        rows += timeline.add(int(e.created_at.timestamp() * 1000), e.origin, e.path, e.created_at)
    return rows
