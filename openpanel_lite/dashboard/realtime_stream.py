"""The realtime page's Server-Sent Events stream: one per browser tab, fed by the in-process bus.

What it sends (each an SSE message whose data is an HTML partial rendered with autoescape):
- ``event: feed``  the latest-events list, as soon as the bus hands over an event (it carries the whole
  row, so the feed needs no store read);
- ``event: stats`` the visitor count, histogram and tables, read from the store once the writer has
  written what the bus announced (the bus fires at acceptance, the store lags by up to a flush interval),
  and every REFRESH_S anyway, because the windows slide even when nothing happens.
Renders are throttled to one per THROTTLE_S; a comment goes out after HEARTBEAT_S of silence (so proxies
keep the connection and a dead peer is noticed). The stream ends when the client disconnects, after
MAX_LIFETIME_S (EventSource reconnects, and the reconnect re-checks the login and membership), or at
``close_all()``; its bus subscription is closed in every case.

Shutdown: granian drains open responses before the app's lifespan shutdown runs, so a stream would hold
a stopping server for up to MAX_LIFETIME_S. Whoever stops the server calls ``close_all()`` first (from
any thread), and every stream ends at once; MAX_LIFETIME_S is the bound when nobody does.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from litestar.response import ServerSentEventMessage

from openpanel_lite.bus import Subscription
from openpanel_lite.reports.events import EventItem
from openpanel_lite.reports.realtime import FEED_SIZE, WINDOW, Realtime, feed_item
from openpanel_lite.runtime import Runtime
from openpanel_lite.storage.rows import EventRow

THROTTLE_S = 1.0
HEARTBEAT_S = 15.0
REFRESH_S = 30.0
# While announced events wait for the writer: how often to look at its progress (in-process, no I/O).
STORE_POLL_S = 0.1
MAX_LIFETIME_S = 120.0
RETRY_MS = 3000

StatsReader = Callable[[], Realtime]  # blocking: runs in a worker thread
Render = Callable[[str, Realtime | None, list[EventItem]], str]  # (partial, stats, feed) -> HTML


class FeedBuffer:
    """The newest FEED_SIZE events of the window, merged from the store and the bus by event id."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._items: dict[str, EventItem] = {}

    def add(self, items: list[EventItem]) -> None:
        for item in items:
            self._items[item.id] = item
        self._trim()

    def add_row(self, event: EventRow) -> None:
        self.add([feed_item(event, self.zone)])

    def _trim(self) -> None:
        since = datetime.now(UTC) - WINDOW
        keep = sorted(
            (i for i in self._items.values() if i.created_at >= since),
            key=lambda i: (i.created_at, i.id),
            reverse=True,
        )[:FEED_SIZE]
        self._items = {i.id: i for i in keep}

    def items(self) -> list[EventItem]:
        """Newest first."""
        self._trim()
        return list(self._items.values())


_open: weakref.WeakSet[RealtimeStream] = weakref.WeakSet()
_open_lock = threading.Lock()


def close_all() -> int:
    """End every open stream (thread-safe; call before stopping the server). Returns how many."""
    with _open_lock:
        streams = list(_open)
    for stream in streams:
        stream.close()
    return len(streams)


class RealtimeStream:
    """The state of one tab's stream; `messages()` is the SSE body."""

    def __init__(self, runtime: Runtime, project_id: str, zone: ZoneInfo, stats: StatsReader, render: Render):
        self.runtime = runtime
        self.project_id = project_id
        self.stats = stats
        self.render = render
        self.feed = FeedBuffer(zone)
        self._getter: asyncio.Task[EventRow] | None = None
        self._closing = asyncio.Event()
        self._closer: asyncio.Task[bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def close(self) -> None:
        """Make the stream end at its next step; callable from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._closing.set)

    async def _next_event(self, sub: Subscription, timeout: float) -> EventRow | None:
        # The pending get() survives a timeout (asyncio.wait does not cancel it), so no event is lost
        # between waits, as it could be with wait_for on 3.11.
        if self._getter is None:
            self._getter = asyncio.ensure_future(sub.get())
        if self._closer is None:
            self._closer = asyncio.ensure_future(self._closing.wait())
        done, _ = await asyncio.wait(
            {self._getter, self._closer}, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
        )
        if self._getter not in done:
            return None
        task, self._getter = self._getter, None
        return task.result()

    def _writer_state(self) -> tuple[int, bool] | None:
        """(the project's data version, writer idle); None once the server is stopping."""
        try:
            writer = self.runtime.ingest.writer
        except RuntimeError:
            return None
        return writer.data_version(self.project_id), writer.idle()

    async def messages(self) -> AsyncGenerator[ServerSentEventMessage, None]:
        self._loop = asyncio.get_running_loop()
        sub = self.runtime.ingest.bus.subscribe(self.project_id)
        with _open_lock:
            _open.add(self)
        try:
            async for message in self._run(sub):
                yield message
        finally:
            with _open_lock:
                _open.discard(self)
            sub.close()
            for task in (self._getter, self._closer):
                if task is not None:
                    task.cancel()

    async def _run(self, sub: Subscription) -> AsyncGenerator[ServerSentEventMessage, None]:
        started = time.monotonic()
        # Sent at once: the browser sees the stream open, and learns how soon to reconnect.
        yield ServerSentEventMessage(data=None, comment="connected", retry=RETRY_MS)
        state = self._writer_state()
        if state is None:
            return
        rendered_version = state[0]
        stats = await asyncio.to_thread(self.stats)
        self.feed.add(stats.feed)
        # A reconnecting tab may have missed anything: the first update is complete.
        yield ServerSentEventMessage(data=self.render("stats", stats, []), event="stats")
        yield ServerSentEventMessage(data=self.render("feed", None, self.feed.items()), event="feed")
        last_sent = last_stats = last_write = time.monotonic()
        feed_dirty = False
        waiting_since: float | None = None  # when announced events started waiting for the writer
        while True:
            now = time.monotonic()
            deadlines = [last_write + HEARTBEAT_S, last_stats + REFRESH_S, started + MAX_LIFETIME_S]
            if feed_dirty or waiting_since is not None:
                deadlines.append(max(last_sent + THROTTLE_S, now + STORE_POLL_S))
            event = await self._next_event(sub, min(deadlines) - now)
            while event is not None:
                self.feed.add_row(event)
                feed_dirty = True
                waiting_since = waiting_since or time.monotonic()
                event = sub.queue.get_nowait() if not sub.queue.empty() else None
            now = time.monotonic()
            state = self._writer_state()
            if state is None or self._closing.is_set() or now - started >= MAX_LIFETIME_S:
                return
            version, idle = state
            # Every write of this project's rows bumps the version: whatever changed, the stats follow.
            stats_due = version != rendered_version or now - last_stats >= REFRESH_S
            if (feed_dirty or stats_due) and now - last_sent >= THROTTLE_S:
                if stats_due:
                    stats = await asyncio.to_thread(self.stats)
                    self.feed.add(stats.feed)
                    rendered_version, last_stats = version, time.monotonic()
                    yield ServerSentEventMessage(data=self.render("stats", stats, []), event="stats")
                yield ServerSentEventMessage(data=self.render("feed", None, self.feed.items()), event="feed")
                feed_dirty = False
                last_sent = last_write = time.monotonic()
            elif now - last_write >= HEARTBEAT_S:
                yield ServerSentEventMessage(data=None, comment="heartbeat")
                last_write = now
            # Announced events were spooled before the bus fired, so once the writer is idle they are in
            # the store, and once that version is rendered there is nothing left to wait for. A writer
            # kept busy by other projects is not waited for past one refresh period.
            if waiting_since is not None and (
                (idle and version == rendered_version) or now - waiting_since >= REFRESH_S
            ):
                waiting_since = None
