"""In-process event bus (replaces upstream's Redis pub/sub): accepted events fan out to subscribers
such as the realtime dashboard. Slow subscribers lose their oldest events, never block ingest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from openpanel_lite.storage.rows import EventRow


class Subscription:
    """One subscriber's bounded queue; `dropped` counts events it was too slow to take."""

    def __init__(self, bus: EventBus, project_id: str | None, maxsize: int) -> None:
        self._bus = bus
        self.project_id = project_id
        self.queue: asyncio.Queue[EventRow] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, event: EventRow) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> EventRow:
        return await self.queue.get()

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, project_id: str | None = None, maxsize: int = 1000) -> Subscription:
        """Receive accepted events (of one project, or all when None) on the calling event loop."""
        sub = Subscription(self, project_id, maxsize)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def __len__(self) -> int:
        return len(self._subs)

    def publish(self, events: Iterable[EventRow]) -> None:
        if not self._subs:
            return
        for event in events:
            for sub in self._subs:
                if sub.project_id is None or sub.project_id == event.project_id:
                    sub.offer(event)
