"""Ingest wiring: builds the spool, writer, pipeline and service for one process, and runs the
background jobs (store writer, session reaper, midnight salt rotation, GeoIP download).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from openpanel_lite import logs, paths
from openpanel_lite.bus import EventBus
from openpanel_lite.config import Config
from openpanel_lite.ingest import bots, geodata, useragent
from openpanel_lite.ingest.auth import IngestAuth
from openpanel_lite.ingest.client_ip import TrustedProxies
from openpanel_lite.ingest.geo import GeoLookup
from openpanel_lite.ingest.identity import Salts
from openpanel_lite.ingest.pipeline import Pipeline, Rows
from openpanel_lite.ingest.profiles import ProfileBook
from openpanel_lite.ingest.service import IngestService
from openpanel_lite.ingest.sessions import SessionTracker
from openpanel_lite.ingest.spool import Spool, SpoolRecord
from openpanel_lite.ingest.state_loaders import open_sessions, profile_loader, session_views
from openpanel_lite.ingest.writer import StoreWriter
from openpanel_lite.meta import salts as salts_mod
from openpanel_lite.meta.db import MetaDB
from openpanel_lite.metrics import Metrics
from openpanel_lite.storage import EventStore

MIB = 1024 * 1024
# How often idle sessions are looked for; a session_end lands at most this late after the timeout.
REAP_INTERVAL_S = 30.0


class SpoolSink:
    """The service's Sink: rows become one spool record (durable before the request is answered)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def accepting(self) -> bool:
        # Cheap pre-check so overload is shed before the body is parsed; append re-checks.
        return self.spool.admission() is None

    async def write(self, rows: Rows, dedup_key: str | None) -> bool:
        record = SpoolRecord(
            events=tuple(rows.events),
            profiles=tuple(rows.profiles),
            sessions=tuple(rows.sessions),
            groups=tuple(rows.groups),
            bots=tuple(rows.bots),
            profile_links=tuple(rows.links),
            view_durations=tuple(rows.durations),
            page_views=tuple(rows.page_views),
        )
        return await self.spool.append(record, dedup_key) is not None


def _salts(meta: MetaDB, now: datetime) -> Salts:
    salts_mod.ensure_salts(meta, now)
    current = salts_mod.rotate_salts(meta, now)
    return Salts(current=current.current, previous=current.previous)


def _next_midnight(now: datetime) -> datetime:
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


class IngestRuntime:
    """Everything /track needs, opened at start and drained at stop."""

    def __init__(self, cfg: Config, meta: MetaDB, store: EventStore, metrics: Metrics) -> None:
        self.cfg = cfg
        self.meta = meta
        self.store = store
        self.metrics = metrics
        ing = cfg.ingest
        self.spool = Spool(
            paths.spool_path(cfg.data_dir),
            synchronous=ing.spool_synchronous,
            commit_window_ms=ing.spool_commit_window_ms,
            max_queue=ing.queue_max_events,
            max_bytes=ing.spool_max_mb * MIB,
            min_free_bytes=ing.min_free_disk_mb * MIB,
            min_free_ratio=ing.min_free_disk_ratio,
        )
        self.writer = StoreWriter(
            self.spool,
            store,
            flush_interval_ms=ing.flush_interval_ms,
            flush_max_events=ing.flush_max_events,
            metrics=metrics,
        )
        self.tracker = SessionTracker(ing.session_timeout_ms)
        self.pipeline = Pipeline(
            tracker=self.tracker,
            profiles=ProfileBook(profile_loader(store)),
            geo=geodata.open_geo(cfg),
            salts=_salts(meta, datetime.now(UTC)),
        )
        self.sink = SpoolSink(self.spool)
        self.bus = EventBus()
        self.auth = IngestAuth(meta)
        self.service = IngestService(
            auth=self.auth,
            pipeline=self.pipeline,
            sink=self.sink,
            metrics=metrics,
            trusted_proxies=TrustedProxies.from_cidrs(cfg.server.trusted_proxies),
            bus=self.bus,
        )
        metrics.watch_queue("store_writer", self.writer.queue_size)
        metrics.watch_queue("spool_pending", self.spool.pending_count)
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_download = threading.Event()
        # Parsers and bot patterns load lazily; pay that once here, not on the first request.
        useragent.warm_up()
        bots.warm_up()

    async def start(self) -> None:
        """Replay the spool into the store, resume open sessions, start the background jobs."""
        await self.writer.start()
        now = datetime.now(UTC)
        rows = await asyncio.to_thread(open_sessions, self.store, now, self.cfg.ingest.session_timeout_ms)
        self.tracker.restore(rows, int(now.timestamp() * 1000))
        views = await asyncio.to_thread(session_views, self.store, rows)
        self.tracker.restore_views(views)
        if rows:
            logs.log("sessions_resumed", count=len(rows))
        self._spawn(self._reap_loop(), "session-reaper")
        self._spawn(self._salt_loop(), "salt-rotation")
        if self.pipeline.geo is None and self.cfg.geoip.auto_download and not self.cfg.geoip.path:
            geodata.start_background_download(self.cfg, self._geo_ready, stop=self._stop_download)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def _geo_ready(self, lookup: GeoLookup) -> None:
        # Called from the download thread; swapping one reference is atomic under the GIL.
        self.pipeline.geo = lookup
        logs.log("geoip_ready", sources=[s.path for s in lookup.sources])

    async def reap(self, now: datetime | None = None) -> int:
        """Emit session_end for idle sessions; returns how many ended."""
        at = now or datetime.now(UTC)
        ended, _ = self.tracker.reap(int(at.timestamp() * 1000))
        if ended:
            await self.sink.write(Rows(events=ended), None)
            self.bus.publish(ended)
            for event in ended:
                self.metrics.count_event(event.project_id, event.name)
        return len(ended)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL_S)
            try:
                await self.reap()
            except Exception as e:  # keep reaping; the sessions stay in memory until it works
                logs.error("session_reap_failed", error=str(e))

    async def _salt_loop(self) -> None:
        while True:
            now = datetime.now(UTC)
            await asyncio.sleep((_next_midnight(now) - now).total_seconds() + 0.5)
            try:
                self.pipeline.salts = await asyncio.to_thread(_salts, self.meta, datetime.now(UTC))
                logs.log("salts_rotated")
            except Exception as e:
                logs.error("salt_rotation_failed", error=str(e))

    async def stop(self, timeout_s: float) -> None:
        """Stop background jobs, write what is spooled into the store, close the spool."""
        self._stop_download.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        drained = await self.writer.stop(timeout_s)
        if not drained:
            logs.warn("ingest_stop_incomplete", left_in_spool=self.spool.pending_count())
        await asyncio.to_thread(self.spool.close)
        if self.pipeline.geo is not None:
            self.pipeline.geo.close()
