"""Operational routes: /healthz and /metrics; and what keeps them meaningful under overload: the
event-loop lag monitor and the /healthz answer given on the raw ASGI front (ingest/fastpath.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import msgspec
from litestar import Response, Router, get
from litestar.di import NamedDependency

from openpanel_lite.metrics import CONTENT_TYPE
from openpanel_lite.runtime import Health, Runtime

# How often the lag probe runs: often enough to see a stall within 20 ms, cheap enough (50 callbacks
# a second) to cost nothing measurable.
LAG_PROBE_INTERVAL_S = 0.02
# Lag counts as sustained when this many probes in a row ran late: one long iteration (a GC pass, a
# burst of completions) makes one probe late and is over by the time anyone reads the value; shedding
# on it turned away a few dozen requests of an otherwise healthy ingest benchmark run.
SUSTAINED_PROBES = 3


@get("/healthz", sync_to_thread=True, summary="Health of the metadata DB, event store and queues")
def healthz(runtime: NamedDependency[Runtime]) -> Response[Health]:
    """200 when every part works; 503 naming the failed parts. (The server answers it in front of
    this handler, see HealthAnswer; the route documents it and serves apps run without the front.)"""
    health = runtime.health()
    return Response(health, status_code=200 if health.status == "ok" else 503)


@get("/metrics", sync_to_thread=False, include_in_schema=False)
def metrics(runtime: NamedDependency[Runtime]) -> Response[bytes]:
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)


router = Router(path="/", route_handlers=[healthz, metrics])


class LoopLagMonitor:
    """Measures how late the event loop runs a callback it scheduled for a known time.

    A loop busy with a long iteration (a burst of completions, a GC pass, a slow synchronous call)
    runs the probe late by about that long; `lag_s` is the lateness of the last probe. While a long
    iteration is still running nobody can read the value anyway: the next reader runs after it, by
    which time the probe that ran first has recorded it.
    """

    def __init__(self, interval_s: float = LAG_PROBE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.lag_s = 0.0
        # The smallest lateness of the last SUSTAINED_PROBES probes: above a threshold only when
        # each of them was late by more than it.
        self.sustained_lag_s = 0.0
        self._recent: deque[float] = deque(maxlen=SUSTAINED_PROBES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None:
            return
        self._loop = loop
        self._due = loop.time() + self.interval_s
        self._handle = loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.lag_s = 0.0
        self.sustained_lag_s = 0.0
        self._recent.clear()

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        self.lag_s = max(0.0, now - self._due)
        self._recent.append(self.lag_s)
        full = len(self._recent) == SUSTAINED_PROBES
        self.sustained_lag_s = min(self._recent) if full else 0.0
        self._due = now + self.interval_s
        self._handle = loop.call_at(self._due, self._tick)


class HealthAnswer:
    """/healthz as cheap as it can be: the probes (a SQLite and a DuckDB query) run on a thread of
    their own, so they never wait behind other work handed to threads, and concurrent checks share
    one probe."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pool: ThreadPoolExecutor | None = None
        self._running: asyncio.Future[tuple[int, bytes]] | None = None

    def _probe(self) -> tuple[int, bytes]:
        health = self.runtime.health()
        return (200 if health.status == "ok" else 503), msgspec.json.encode(health)

    async def answer(self) -> tuple[int, bytes]:
        """(status, JSON body) exactly as the Litestar route answers."""
        running = self._running
        if running is None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="healthz")
            running = asyncio.get_running_loop().run_in_executor(self._pool, self._probe)
            self._running = running
            running.add_done_callback(self._done)
        return await asyncio.shield(running)

    def _done(self, _: object) -> None:
        self._running = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
