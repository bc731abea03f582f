"""Durable accept log: every accepted request's rows are committed here (SQLite WAL, group commit)
before the 202, then handed to the store writer; after a crash the writer replays what the store lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import apsw
import msgspec

from openpanel_lite.ingest.spool_file import Entry, SpoolError, SpoolFile
from openpanel_lite.logs import log
from openpanel_lite.storage.rows import (
    BotEventRow,
    EventRow,
    GroupRow,
    PageViewRow,
    ProfileLink,
    ProfileRow,
    SessionRow,
    ViewDurationRow,
)

GIB = 1 << 30
DAY_MS = 86_400_000


class SpoolRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The rows one accepted request produced, already enriched: rows hold no raw IP, so none is spooled."""

    events: tuple[EventRow, ...] = ()
    profiles: tuple[ProfileRow, ...] = ()
    sessions: tuple[SessionRow, ...] = ()
    groups: tuple[GroupRow, ...] = ()
    bots: tuple[BotEventRow, ...] = ()
    # Added after v1 records were written: the default keeps older spool files decodable.
    profile_links: tuple[ProfileLink, ...] = ()
    view_durations: tuple[ViewDurationRow, ...] = ()
    page_views: tuple[PageViewRow, ...] = ()

    def row_count(self) -> int:
        tables = (
            *(self.events, self.profiles, self.sessions, self.groups, self.bots),
            *(self.profile_links, self.view_durations, self.page_views),
        )
        return sum(len(rows) for rows in tables)


class SpoolUnavailable(SpoolError):
    """Not accepting right now: the route answers 503 with Retry-After."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(f"spool unavailable: {reason}")
        self.reason = reason
        self.retry_after_s = retry_after_s


class SpoolFull(SpoolUnavailable):
    """A cap is reached: reason is 'queue', 'rows', 'bytes' or 'disk'."""


class SpoolClosed(SpoolUnavailable):
    """Shutting down (or closed): no new records."""

    def __init__(self) -> None:
        super().__init__("closed", 5)


Listener = Callable[[Sequence[tuple[int, SpoolRecord]]], None]
Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _Item:
    """One queued append, waiting for the commit thread."""

    __slots__ = ("entry", "future", "loop", "queued_at", "record")

    def __init__(
        self,
        record: SpoolRecord,
        entry: Entry,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[int | None],
    ) -> None:
        self.record = record
        self.entry = entry
        self.loop = loop
        self.future = future
        self.queued_at = time.monotonic()


# What the commit thread decided for one item: a seq, None (duplicate) or the error for the whole group.
_Outcome = int | None | SpoolError


class Spool:
    """The spool file plus its group-commit thread.

    `append` is called on the event loop; the commit thread gathers the queue for at most
    `commit_window_ms` (or `commit_max_records`), commits one transaction (one fsync with FULL), and
    then, on the loop and in seq order, passes the new records to the listener before resolving the
    callers' futures, so the writer sees every committed record exactly once and in order.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        commit_window_ms: float = 5.0,
        commit_max_records: int = 500,
        max_queue: int = 10_000,
        max_rows: int = 2_000_000,
        max_bytes: int = 2 * GIB,
        min_free_bytes: int = GIB,
        min_free_ratio: float = 0.10,
        dedup_window_ms: int = DAY_MS,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.path = Path(path)
        self._window_s = max(0.0, commit_window_ms) / 1000
        self._group_max = max(1, commit_max_records)
        self._max_queue = max_queue
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._min_free_bytes = min_free_bytes
        self._min_free_ratio = min_free_ratio
        self._dedup_window_ms = dedup_window_ms
        self._clock = clock
        self._encoder = msgspec.msgpack.Encoder(uuid_format="bytes")
        self._decoder = msgspec.msgpack.Decoder(SpoolRecord)
        self.file = SpoolFile(self.path, synchronous)
        self._delivered_upto = self.file.last_seq()

        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._last_group = 1
        self._accepting = True
        self._listener: Listener | None = None
        self._outstanding: set[asyncio.Future[int | None]] = set()
        self._disk_checked_at = -1.0
        self._disk_ok = True
        self._thread = threading.Thread(target=self._run, name="spool-commit", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------------------------------
    # accepting (event loop side)

    def set_listener(self, listener: Listener | None) -> None:
        """Called on the loop with each committed group's (seq, record) pairs, in seq order."""
        self._listener = listener

    @property
    def delivered_upto(self) -> int:
        """Every record with a higher seq is still to be passed to the listener (read on the loop)."""
        return self._delivered_upto

    async def append(
        self, record: SpoolRecord, dedup_key: str | None = None, *, dedup_window_ms: int | None = None
    ) -> int | None:
        """Commit one record durably; its seq, or None when `dedup_key` was seen inside its window.

        Raises SpoolUnavailable (→ 503) when closed or over a cap, SpoolError when the commit failed.
        """
        if not self._accepting:
            raise SpoolClosed()
        self._check_caps()
        loop = asyncio.get_running_loop()
        body = self._encoder.encode(record)
        window = self._dedup_window_ms if dedup_window_ms is None else dedup_window_ms
        with self._cond:
            if self._closing:
                raise SpoolClosed()
            future: asyncio.Future[int | None] = loop.create_future()
            self._queue.append(_Item(record, Entry(body, dedup_key, window), loop, future))
            # Removed by _complete, which resolves it (cheaper than a done-callback per request).
            self._outstanding.add(future)
            # Wake the thread when it may be idle (first item) or when a full group is ready.
            if len(self._queue) == 1 or len(self._queue) >= self._group_max:
                self._cond.notify()
        return await future

    def _check_caps(self) -> None:
        queued = len(self._queue)
        if queued >= self._max_queue:
            raise SpoolFull("queue", 1)
        if self.file.rows + queued >= self._max_rows:
            raise SpoolFull("rows", 5)
        if self.file.body_bytes >= self._max_bytes:
            raise SpoolFull("bytes", 5)
        if not self._disk_has_room():
            raise SpoolFull("disk", 30)

    def admission(self) -> SpoolUnavailable | None:
        """Why an append would be refused right now (closed, over a cap, disk low), else None.

        Lets the route shed load before it reads or parses a request body.
        """
        if not self._accepting:
            return SpoolClosed()
        try:
            self._check_caps()
        except SpoolUnavailable as e:
            return e
        return None

    def _disk_has_room(self) -> bool:
        # statvfs once a second is plenty: the floor is far from the edge by design.
        now = time.monotonic()
        if now - self._disk_checked_at >= 1.0:
            self._disk_checked_at = now
            usage = shutil.disk_usage(self.path.parent)
            floor = max(self._min_free_bytes, int(usage.total * self._min_free_ratio))
            self._disk_ok = usage.free >= floor
        return self._disk_ok

    def stop_accepting(self) -> None:
        """Refuse new appends (SpoolClosed); queued ones still commit."""
        self._accepting = False

    async def drain(self) -> None:
        """Wait until every append made so far has been committed (or failed) and delivered."""
        if self._outstanding:
            await asyncio.wait(set(self._outstanding))

    # ----------------------------------------------------------------------------------------
    # the commit thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing and drained
                # Group commit: give later requests up to the window, counted from the oldest one so a
                # backlog that built up during the last fsync commits at once. A lone writer (last
                # group of one) does not wait at all: the window would only add latency.
                deadline = self._queue[0].queued_at + self._window_s
                while self._last_group > 1 and len(self._queue) < self._group_max and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                take = min(len(self._queue), self._group_max)
                group = [self._queue.popleft() for _ in range(take)]
                self._last_group = take
            self._deliver(group, self._commit(group))

    def _commit(self, group: list[_Item]) -> list[_Outcome]:
        try:
            return list(self.file.commit([item.entry for item in group], self._clock()))
        except Exception as e:  # any failure must still answer every waiting request
            log("spool_commit_failed", logging.ERROR, error=str(e), records=len(group))
            error = SpoolFull("disk", 30) if isinstance(e, apsw.FullError) else SpoolError(str(e))
            return [error] * len(group)

    def _deliver(self, group: list[_Item], outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, _Outcome]]] = {}
        for item, outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append((item, outcome))
        for loop, pairs in by_loop.items():
            # A closed loop has nobody waiting any more; the rows are durable anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._complete, pairs)

    def _complete(self, pairs: list[tuple[_Item, _Outcome]]) -> None:
        # Runs on the loop. The listener goes first so the writer holds a record before its 202 is sent.
        committed = [(o, item.record) for item, o in pairs if isinstance(o, int)]
        if committed:
            self._delivered_upto = max(self._delivered_upto, committed[-1][0])
            if self._listener is not None:
                try:
                    self._listener(committed)
                except Exception as e:  # the records are durable; a replay after restart still finds them
                    log("spool_listener_failed", logging.ERROR, error=repr(e))
        outstanding = self._outstanding
        for item, outcome in pairs:
            outstanding.discard(item.future)
            if item.future.done():
                continue  # the caller gave up (cancelled); the record may still be committed
            if isinstance(outcome, SpoolError):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)

    # ----------------------------------------------------------------------------------------
    # replay and housekeeping (any thread; blocking)

    def pending_after(
        self, after_seq: int, upto_seq: int | None = None, *, page: int = 500
    ) -> Iterator[tuple[int, SpoolRecord]]:
        """Spooled records with after_seq < seq (<= upto_seq), in seq order, read page by page.

        Each page is a separate short read, so a slow consumer never pins an old WAL snapshot.
        """
        last = after_seq
        while True:
            rows = self.file.read_after(last, upto_seq, page)
            for seq, body in rows:
                try:
                    record = self._decoder.decode(body)
                except msgspec.DecodeError as e:
                    # Corrupt, or written by a newer version: it can never reach the store, so set it
                    # aside instead of blocking every record behind it.
                    self.file.dead_letter(seq, str(e))
                    log("spool_record_unreadable", logging.ERROR, seq=seq, error=str(e))
                    continue
                yield seq, record
            if len(rows) < page:
                return
            last = rows[-1][0]

    def prune(self, upto_seq: int, *, chunk: int = 5000) -> int:
        """Delete records with seq <= upto_seq, in short transactions; returns how many went."""
        return self.file.prune(upto_seq, chunk)

    def prune_dedup(self, *, chunk: int = 5000) -> int:
        """Forget dedup keys whose window has passed; returns how many."""
        return self.file.prune_dedup(self._clock(), chunk)

    def last_seq(self) -> int:
        """The highest seq ever given out (0 for a new spool), pruned or not."""
        return self.file.last_seq()

    def ensure_seq_above(self, seq: int) -> bool:
        """Make the next seq greater than `seq`; True when that moved it.

        Needed when the spool file is newer than the store (deleted or restored from an older backup):
        new records must not get seqs the store's watermark already claims.
        """
        return self.file.ensure_seq_above(seq)

    def dead_letter_count(self) -> int:
        """Records set aside because they could not be decoded."""
        return self.file.dead_letter_count()

    def pending_count(self) -> int:
        """Records held in the file (committed and not yet pruned)."""
        return self.file.rows

    def queued(self) -> int:
        """Appends waiting for the commit thread."""
        return len(self._queue)

    def size(self) -> int:
        """Bytes on disk: the database file plus its WAL."""
        return self.file.size()

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued, stop the thread and close the file."""
        self._accepting = False
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return  # a commit is stuck (e.g. a dead disk); leave the file to the thread
        self.file.close()
