"""StoreWriter: the one writer that moves spooled records into the event store, a WriteBatch per flush
with the spool watermark in the same transaction; it replays the spool at start and prunes it after
each checkpoint (reliability.md §0 items 1-2, 6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from openpanel_lite.ingest.spool import Spool, SpoolRecord
from openpanel_lite.ingest.spool_erase import ProfileErasure, erase_from_spool
from openpanel_lite.logs import log
from openpanel_lite.metrics import Metrics
from openpanel_lite.storage.rows import (
    BotEventRow,
    EventRow,
    GroupRow,
    PageViewRow,
    ProfileLink,
    ProfileRow,
    SessionRow,
    ViewDurationRow,
    WriteBatch,
)

# The points a fault hook is called at, in the order one flush-and-checkpoint cycle passes them.
FAULT_STEPS = (
    "before_append",
    "after_append",
    "before_checkpoint",
    "after_checkpoint",
    "before_prune",
    "after_prune",
)

FaultHook = Callable[[str], None]


class WriterStore(Protocol):
    """The part of storage.EventStore the writer uses."""

    def append(self, batch: WriteBatch) -> None: ...

    def watermark(self) -> int: ...

    def checkpoint(self) -> None: ...


class StoreWriteFailed(Exception):
    """A store call failed; the records stay queued in memory and in the spool."""


class _Pending(NamedTuple):
    seq: int
    record: SpoolRecord
    weight: int  # rows, at least 1, so empty records still count towards a batch
    arrived: float  # time.monotonic()


def net_sessions(rows: Sequence[SessionRow]) -> list[SessionRow]:
    """Drop +1/-1 pairs of the same session version (project, id, version): they cancel out anyway.

    Keeps the first |net| rows of the surviving sign per version, in their original order.
    """
    net: dict[tuple[str, str, int], int] = {}
    for row in rows:
        if row.sign in (1, -1):
            key = (row.project_id, row.id, row.version)
            net[key] = net.get(key, 0) + row.sign
    kept: list[SessionRow] = []
    for row in rows:
        if row.sign not in (1, -1):
            kept.append(row)
            continue
        key = (row.project_id, row.id, row.version)
        left = net[key]
        if left * row.sign > 0:
            kept.append(row)
            net[key] = left - row.sign
    return kept


def build_batch(items: Sequence[tuple[int, SpoolRecord]]) -> WriteBatch:
    """One WriteBatch for consecutive spool records; its watermark is the last seq."""
    events: list[EventRow] = []
    profiles: list[ProfileRow] = []
    sessions: list[SessionRow] = []
    groups: list[GroupRow] = []
    bots: list[BotEventRow] = []
    links: list[ProfileLink] = []
    durations: list[ViewDurationRow] = []
    page_views: list[PageViewRow] = []
    for _, record in items:
        events.extend(record.events)
        profiles.extend(record.profiles)
        sessions.extend(record.sessions)
        groups.extend(record.groups)
        bots.extend(record.bots)
        links.extend(record.profile_links)
        durations.extend(record.view_durations)
        page_views.extend(record.page_views)
    return WriteBatch(
        events=events,
        profiles=profiles,
        sessions=net_sessions(sessions),
        groups=groups,
        bots=bots,
        profile_links=links,
        view_durations=durations,
        page_views=page_views,
        spool_watermark=items[-1][0] if items else None,
    )


class StoreWriter:
    """Holds committed spool records in memory and writes them to the store in batches.

    Two modes. *Live*: the spool's listener hands over every committed record in seq order, so the
    spool is never read back. *Catch-up* (at start, and whenever memory holds `max_memory_events`):
    live hand-overs are ignored and batches are read back from the spool after the last taken seq
    until the writer has caught up with everything the spool has delivered.
    """

    def __init__(
        self,
        spool: Spool,
        store: WriterStore,
        *,
        flush_interval_ms: int = 1000,
        flush_max_events: int = 5000,
        max_memory_events: int = 100_000,
        checkpoint_interval_s: float = 30.0,
        retry_min_s: float = 0.1,
        retry_max_s: float = 5.0,
        metrics: Metrics | None = None,
        fault_hook: FaultHook | None = None,
    ) -> None:
        self._spool = spool
        self._store = store
        self._interval = flush_interval_ms / 1000
        self._flush_max = max(1, flush_max_events)
        self._max_memory = max(self._flush_max, max_memory_events)
        self._checkpoint_interval = checkpoint_interval_s
        self._retry_min = retry_min_s
        self._retry_max = retry_max_s
        self._metrics = metrics
        self._hook = fault_hook or (lambda step: None)

        self._pending: deque[_Pending] = deque()
        self._pending_weight = 0
        self._flushed_upto = 0  # the store's watermark as far as this writer knows
        self._versions: dict[str, int] = {}
        self._taken_upto = 0  # highest seq in memory or flushed
        self._checkpointed_upto = 0  # the watermark at this process's last successful checkpoint
        self._live = False
        self._backlog = False  # the last read-back filled a batch: more is likely waiting
        self._last_refill = -math.inf
        self._verify = False  # a store call failed: re-read the watermark before writing again
        self._next_checkpoint = math.inf
        self._lock = asyncio.Lock()  # one store call at a time (DuckDB cannot checkpoint mid-append)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._draining = False
        self._abort = False

    # ----------------------------------------------------------------------------------------
    # lifecycle

    async def start(self, *, background: bool = True) -> None:
        """Replay what the store lacks from the spool, then (background=True) run the flush loop.

        Replay errors propagate only with background=False; otherwise the loop keeps retrying.
        """
        mark = await asyncio.to_thread(self._store.watermark)
        if await asyncio.to_thread(self._spool.ensure_seq_above, mark):
            # The spool is behind the store (deleted, or restored from an older copy).
            log("spool_behind_store", logging.WARNING, store_watermark=mark)
        self._flushed_upto = self._taken_upto = mark
        self._spool.set_listener(self._on_commit)
        self._next_checkpoint = time.monotonic() + self._checkpoint_interval
        self._started = True
        began, before = time.monotonic(), mark
        try:
            while not self._live and await self._write_next():
                pass
        except StoreWriteFailed:
            if not background:
                raise
        log(
            "spool_replayed",
            records=self._flushed_upto - before,
            seconds=round(time.monotonic() - began, 3),
            watermark=self._flushed_upto,
        )
        if background:
            self._task = asyncio.create_task(self._run(), name="store-writer")

    async def stop(self, timeout_s: float) -> bool:
        """Stop accepting, write everything, checkpoint and prune, within timeout_s.

        True when nothing is left outside the store; anything left stays in the spool for the next
        start (no loss either way). False may leave one store call running in its thread.
        """
        deadline = time.monotonic() + timeout_s
        self._spool.stop_accepting()
        if not self._started:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._spool.drain(), max(0.0, deadline - time.monotonic()))
        self._draining = True
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="store-writer-drain")
        done, _ = await asyncio.wait({self._task}, timeout=max(0.0, deadline - time.monotonic()))
        if not done:
            # No further store calls: a batch still in flight might otherwise be written twice.
            self._abort = True
            self._wake.set()
            log("store_writer_stop_timeout", logging.WARNING, left=self.queue_size())
        self._spool.set_listener(None)
        return bool(done) and self.idle()

    def idle(self) -> bool:
        """Nothing delivered by the spool is waiting to be written."""
        return self._live and not self._pending

    def queue_size(self) -> int:
        """Events held in memory plus spooled records not yet read back (for metrics and health)."""
        unread = 0 if self._live else max(0, self._spool.delivered_upto - self._taken_upto)
        return self._pending_weight + unread

    @property
    def flushed_upto(self) -> int:
        return self._flushed_upto

    @property
    def checkpointed_upto(self) -> int:
        return self._checkpointed_upto

    @property
    def live(self) -> bool:
        return self._live

    # ----------------------------------------------------------------------------------------
    # records in

    def _on_commit(self, items: Sequence[tuple[int, SpoolRecord]]) -> None:
        # Called by the spool on the loop, in seq order, before the requests get their 202.
        if not self._live:
            return
        was_empty = not self._pending
        now = time.monotonic()
        for seq, record in items:
            if seq <= self._taken_upto:
                continue
            if self._pending_weight >= self._max_memory:
                # Spill: stop holding records; they are read back from the spool when there is room.
                self._live = False
                break
            self._keep(seq, record, now)
        if was_empty or not self._live or self._pending_weight >= self._flush_max:
            self._wake.set()

    def _keep(self, seq: int, record: SpoolRecord, now: float) -> None:
        weight = max(1, record.row_count())
        self._pending.append(_Pending(seq, record, weight, now))
        self._pending_weight += weight
        self._taken_upto = seq

    async def _refill(self) -> None:
        room = self._flush_max - self._pending_weight
        read = await asyncio.to_thread(self._read_back, self._taken_upto, room)
        now = self._last_refill = time.monotonic()
        for seq, record in read:
            if seq > self._taken_upto:
                self._keep(seq, record, now)
        self._backlog = sum(max(1, r.row_count()) for _, r in read) >= room
        # TRICKY: checked on the loop after the read, so no hand-over can slip in between: every
        # record up to delivered_upto is now taken, and every later one will be handed over.
        if self._taken_upto >= self._spool.delivered_upto:
            self._live = True
            self._backlog = False

    def _read_back(self, after: int, room: int) -> list[tuple[int, SpoolRecord]]:
        out: list[tuple[int, SpoolRecord]] = []
        weight = 0
        for seq, record in self._spool.pending_after(after, page=min(500, max(1, room))):
            out.append((seq, record))
            weight += max(1, record.row_count())
            if weight >= room:
                break
        return out

    # ----------------------------------------------------------------------------------------
    # records out

    async def flush(self) -> None:
        """Write everything the spool has committed so far; raises StoreWriteFailed (records kept)."""
        target = self._spool.delivered_upto
        while self._flushed_upto < target and await self._write_next():
            pass

    async def _write_next(self) -> bool:
        """Write one batch (reading back from the spool first when catching up); False if none."""
        async with self._lock:
            if self._abort:
                return False
            if not self._live and self._pending_weight < self._flush_max:
                await self._refill()
            if self._verify:
                await self._skip_stored()
            if not self._pending:
                return False
            items: list[_Pending] = []
            weight = 0
            for item in self._pending:
                if items and weight + item.weight > self._flush_max:
                    break
                items.append(item)
                weight += item.weight
            batch = build_batch([(i.seq, i.record) for i in items])
            self._hook("before_append")
            try:
                await asyncio.to_thread(self._store.append, batch)
            except Exception as e:
                # Committed or not? Unknown: the watermark tells before the next attempt.
                self._verify = True
                raise self._failed("append", e) from e
            self._hook("after_append")
            for _ in items:
                self._pending.popleft()
            self._pending_weight -= weight
            self._flushed_upto = items[-1].seq
            self._bump_versions(batch)
            if self._metrics is not None:
                self._metrics.store_writes_total.inc()
            return True

    def _bump_versions(self, batch: WriteBatch) -> None:
        """Count writes per project, so caches keyed by (query, version) never outlive a flush."""
        tables = batch.tables().values()
        projects = {row.project_id for rows in tables for row in rows if hasattr(row, "project_id")}
        projects.update(link.project_id for link in batch.profile_links)
        for project_id in projects:
            self._versions[project_id] = self._versions.get(project_id, 0) + 1

    def data_version(self, project_id: str) -> int:
        """Bumped after every store write that touched the project (0 before the first)."""
        return self._versions.get(project_id, 0)

    async def _skip_stored(self) -> None:
        try:
            mark = await asyncio.to_thread(self._store.watermark)
        except Exception as e:
            raise self._failed("watermark", e) from e
        self._verify = False
        while self._pending and self._pending[0].seq <= mark:
            self._pending_weight -= self._pending.popleft().weight
        self._flushed_upto = max(self._flushed_upto, mark)
        self._taken_upto = max(self._taken_upto, mark)

    def _failed(self, step: str, error: Exception) -> StoreWriteFailed:
        if self._metrics is not None:
            self._metrics.store_write_errors_total.inc()
        log("store_write_failed", logging.ERROR, step=step, error=repr(error), queued=self.queue_size())
        return StoreWriteFailed(f"{step}: {error!r}")

    async def checkpoint(self) -> bool:
        """Checkpoint the store, then prune the spool up to the watermark the checkpoint covers."""
        async with self._lock:
            if self._abort:
                return False
            self._next_checkpoint = time.monotonic() + self._checkpoint_interval
            mark = self._flushed_upto
            self._hook("before_checkpoint")
            try:
                await asyncio.to_thread(self._store.checkpoint)
            except Exception as e:
                self._failed("checkpoint", e)
                return False
            self._hook("after_checkpoint")
            self._checkpointed_upto = mark
            # Rows above `mark` may sit only in the store's WAL; if that WAL ever has to be
            # quarantined, the spool must still hold them (reliability §0 item 2).
            self._hook("before_prune")
            try:
                await asyncio.to_thread(self._spool.prune, mark)
                await asyncio.to_thread(self._spool.prune_dedup)
            except Exception as e:
                log("spool_prune_failed", logging.ERROR, error=repr(e))
            self._hook("after_prune")
            return True

    async def erase_profile(
        self, erasure: ProfileErasure, erase_in_store: Callable[[], int]
    ) -> tuple[int, int]:
        """GDPR erase while running: the spool's records, the ones held in memory, then the store
        (`erase_in_store`, in a thread), all under the writer's lock so no batch is written meanwhile;
        then the spool is compacted. Returns (spool records rewritten, store rows deleted).

        Requests accepted while this runs may still carry the profile: they are newer than the erase.
        """
        async with self._lock:
            rewritten = await asyncio.to_thread(erase_from_spool, self._spool, erasure)
            kept: deque[_Pending] = deque()
            for item in self._pending:
                stripped = erasure.strip(item.record)
                if stripped is not None:
                    item = item._replace(record=stripped, weight=max(1, stripped.row_count()))
                kept.append(item)
            self._pending = kept
            self._pending_weight = sum(item.weight for item in kept)
            deleted = await asyncio.to_thread(erase_in_store)
            await asyncio.to_thread(self._spool.file.compact)
            self._versions[erasure.project_id] = self._versions.get(erasure.project_id, 0) + 1
        return rewritten, deleted

    # ----------------------------------------------------------------------------------------
    # the loop

    async def _run(self) -> None:
        backoff = self._retry_min
        while not self._abort:
            if not self._draining:
                await self._wait_until_due()
            try:
                wrote = await self._write_next()
            except StoreWriteFailed:
                await self._pause(backoff)
                backoff = min(backoff * 2, self._retry_max)
                continue
            except Exception as e:  # a bug must not silently end the only writer
                log("store_writer_error", logging.ERROR, error=repr(e))
                self._verify = True  # the batch may have been written: check before writing it again
                await self._pause(backoff)
                backoff = min(backoff * 2, self._retry_max)
                continue
            backoff = self._retry_min
            if self._draining and not wrote:
                break
            if self._checkpoint_due() and not self._draining:
                await self.checkpoint()
        if not self._abort and self._flushed_upto > self._checkpointed_upto:
            await self.checkpoint()

    def _checkpoint_due(self) -> bool:
        if self._flushed_upto <= self._checkpointed_upto:
            return False
        return time.monotonic() >= self._next_checkpoint

    def _due_in(self) -> float:
        """Seconds until the next batch is due (0: now; inf: when a record arrives)."""
        now = time.monotonic()
        if self._draining or self._pending_weight >= self._flush_max or (self._backlog and not self._live):
            return 0.0
        if self._pending:
            return max(0.0, self._pending[0].arrived + self._interval - now)
        if not self._live:
            return max(0.0, self._last_refill + self._interval - now)
        return math.inf

    async def _wait_until_due(self) -> None:
        self._wake.clear()
        timeout = self._due_in()
        if self._flushed_upto > self._checkpointed_upto:
            timeout = min(timeout, max(0.0, self._next_checkpoint - time.monotonic()))
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), None if math.isinf(timeout) else timeout)

    async def _pause(self, seconds: float) -> None:
        # Backoff that a stop() cuts short.
        self._wake.clear()
        if not self._abort:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
