"""Ingest hardening (issue 6): no 200 for a request that was not stored, load shedding by event-loop
lag and in-flight cap, and /healthz answered on the raw ASGI front.

Real in-process servers on 127.0.0.1 (tests.harness.LiveServer), real spool and store files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

from openpanel_lite import paths
from openpanel_lite.ingest.fastpath import IngestGate, TrackFastPath
from tests.harness import HttpReply, LiveServer
from tests.ingest_support import Site, live_config, screen_view


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose writer does not touch the spool on its own during the test (long interval)."""
    srv = LiveServer(live_config(tmp_path, ingest__flush_interval_ms=60_000))
    yield srv
    srv.stop()


@pytest.fixture
def lag_shedding(tmp_path: Path) -> Iterator[LiveServer]:
    """A server with the production lag threshold (tests/ingest_support.py turns it off elsewhere)."""
    srv = LiveServer(live_config(tmp_path, ingest__shed_loop_lag_ms=200))
    yield srv
    srv.stop()


def _paths(server: LiveServer, prefix: str) -> list[str]:
    rows = server.rows(
        "SELECT path FROM events WHERE name = 'screen_view' AND starts_with(path, $p) ORDER BY path",
        {"p": prefix},
    )
    return [r[0] for r in rows]


def _wait(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class _SpoolWriteLock:
    """Another connection holding the spool's SQLite write lock: the server's commits wait for it
    (busy timeout 5 s) and then fail, as they would behind any other writer or a stalled disk.

    apsw, as the spool: SQLite's locks between connections of one process only work within one copy
    of the library (the POSIX locks themselves belong to the process).
    """

    def __init__(self, server: LiveServer) -> None:
        self.db = apsw.Connection(str(paths.spool_path(server.cfg.data_dir)))
        self.db.execute("BEGIN IMMEDIATE")

        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.db.execute("ROLLBACK")
            self.db.close()


# ------------------------------------------------------------------------------------------------
# criterion 1: a 200 only for a request that was stored (or a true duplicate of a stored one)


def test_identical_request_waits_for_the_original_and_is_stored_when_the_original_failed(
    quiet: LiveServer,
) -> None:
    """The original's commit fails (503) while an identical request is in flight: that one must not
    be answered 200 as a duplicate of nothing; it is stored and acknowledged instead."""
    server = quiet
    site = Site(server)
    service = server.runtime.ingest.service
    service.duplicate_window_s = 60.0  # the second request is inside the window on any machine
    body = screen_view("https://example.com/in-flight")
    lock = _SpoolWriteLock(server)
    try:
        with ThreadPoolExecutor(2) as pool:
            first: Future[HttpReply] = pool.submit(site.track, body)
            _wait(lambda: len(service._inflight) == 1)  # noqa: SLF001 - the original is in its commit
            second: Future[HttpReply] = pool.submit(site.track, body)
            time.sleep(0.5)
            # Before the fix the copy was answered 200 "duplicate" at once, while nothing was stored.
            assert not second.done()
            failed = first.result(30)
            assert (failed.status, failed.headers.get("retry-after")) == (503, "1"), failed.text
            lock.release()
            kept = second.result(30)
        assert kept.status == 200, kept.text
    finally:
        lock.release()
    assert _paths(server, "/in-flight") == ["/in-flight"]


def test_identical_request_in_flight_is_one_event_when_the_original_is_kept(quiet: LiveServer) -> None:
    server = quiet
    site = Site(server)
    service = server.runtime.ingest.service
    service.duplicate_window_s = 60.0
    body = screen_view("https://example.com/kept-once")
    lock = _SpoolWriteLock(server)
    try:
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(site.track, body)
            _wait(lambda: len(service._inflight) == 1)  # noqa: SLF001
            copies = [pool.submit(site.track, body) for _ in range(3)]
            time.sleep(0.3)
            assert not any(c.done() for c in copies)  # waiting for the original's outcome
            lock.release()
            replies = [first.result(30)] + [c.result(30) for c in copies]
    finally:
        lock.release()
    assert [r.status for r in replies] == [200] * 4
    assert len({json.dumps(r.json(), sort_keys=True) for r in replies}) == 1  # same device and session
    assert _paths(server, "/kept-once") == ["/kept-once"]


def test_identical_body_after_the_window_is_stored_each_time(server: LiveServer, site: Site) -> None:
    """The same bytes sent again after the 100 ms window are new events (a page viewed again),
    whatever the content lock, the `__eventId` dedup or the spool did with the earlier ones."""
    body = screen_view("https://example.com/again")
    for _ in range(3):
        assert site.track(body).status == 200
        time.sleep(0.15)
    assert _paths(server, "/again") == ["/again"] * 3


def test_event_id_requests_skip_the_content_lock_and_are_deduped_by_the_spool(
    server: LiveServer, site: Site
) -> None:
    service = server.runtime.ingest.service
    service.duplicate_window_s = 60.0
    body = screen_view("https://example.com/with-id")
    body["payload"]["properties"]["__eventId"] = str(uuid.uuid4())
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: site.track(body), range(6)))
    assert [r.status for r in replies] == [200] * 6
    assert service._recent == {}  # noqa: SLF001 - the in-memory lock was never taken
    assert _paths(server, "/with-id") == ["/with-id"]  # the spool kept one copy


# ------------------------------------------------------------------------------------------------
# criterion 2: overload — loop-lag shedding, the in-flight gate, /healthz on the raw ASGI front


def test_loop_lag_above_the_threshold_sheds_ingest_before_the_body_is_read(lag_shedding: LiveServer) -> None:
    """The fast path's own lag monitor on the server's loop: one 300 ms stall (threshold 200 ms) is
    not overload and sheds nothing; three in a row are, and /track answers 503 + Retry-After without
    reading the body; once the loop keeps time again, 200."""
    site = Site(lag_shedding)
    raw = json.dumps(screen_view("https://example.com/lag")).encode()
    headers = [(k.lower().encode(), v.encode()) for k, v in site.headers().items()]
    headers.append((b"content-type", b"application/json"))
    front = TrackFastPath(None, lag_shedding.runtime)
    assert front.shed_lag_s == 0.2  # ingest.shed_loop_lag_ms (the default, 200)

    async def call() -> tuple[int, dict[bytes, bytes], int]:
        reads = 0
        started: dict[str, Any] = {}

        async def receive() -> dict[str, Any]:
            nonlocal reads
            reads += 1
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)

        scope = {"type": "http", "method": "POST", "path": "/track", "headers": headers}
        await front({**scope, "client": ("127.0.0.1", 5000)}, receive, send)
        return started["status"], dict(started["headers"]), reads

    async def scenario() -> list[tuple[int, dict[bytes, bytes], int]]:
        front.lag.start(asyncio.get_running_loop())
        await asyncio.sleep(0.1)
        before = await call()
        time.sleep(0.3)  # the loop stalls (what a long synchronous call or a huge burst does)
        await asyncio.sleep(0.005)  # the overdue probe runs first and records the lateness
        assert front.lag.lag_s > 0.25
        single = await call()
        for _ in range(2):  # two more stalls: three probes in a row ran late
            time.sleep(0.3)
            await asyncio.sleep(0.005)
        assert front.lag.sustained_lag_s > 0.25
        during = await call()
        await asyncio.sleep(0.1)  # probes on time again
        after = await call()
        front.lag.stop()
        return [before, single, during, after]

    before, single, during, after = lag_shedding.call(scenario())
    assert (before[0], before[2]) == (200, 1)
    assert (single[0], single[2]) == (200, 1)  # one late probe: not sustained, nothing shed
    assert (during[0], during[1][b"retry-after"], during[2]) == (503, b"1", 0)  # body never read
    assert (after[0], after[2]) == (200, 1)
    text = lag_shedding.runtime.metrics.render().decode()
    assert 'openpanel_ingest_shed_total{reason="loop_lag"} 1.0' in text
    assert _paths(lag_shedding, "/lag") == ["/lag", "/lag", "/lag"]


def test_gate_holds_extra_requests_unread_and_sheds_beyond_the_waiting_room(tmp_path: Path) -> None:
    """One request in flight (its commit held), one waiting, the third answered 503 + Retry-After at
    once; /healthz and /metrics answer meanwhile; the two kept requests are stored."""
    srv = LiveServer(
        live_config(
            tmp_path,
            ingest__max_inflight_requests=1,
            ingest__max_waiting_requests=1,
            ingest__flush_interval_ms=60_000,
        )
    )
    try:
        site = Site(srv)
        lock = _SpoolWriteLock(srv)
        try:
            with ThreadPoolExecutor(2) as pool:
                first = pool.submit(site.track, screen_view("https://example.com/gate-1"))
                _wait(lambda: len(srv.runtime.ingest.service._inflight) == 1)  # noqa: SLF001
                second = pool.submit(site.track, screen_view("https://example.com/gate-2"))
                _wait(lambda: 'state="waiting"} 1.0' in srv.runtime.metrics.render().decode())
                began = time.monotonic()
                shed = site.track(screen_view("https://example.com/gate-3"))
                assert (shed.status, shed.headers.get("retry-after")) == (503, "2")
                assert shed.headers["access-control-allow-origin"] == "*"
                legacy = srv.request("POST", "/event", {"name": "x"}, site.headers())
                assert (legacy.status, legacy.headers.get("retry-after")) == (503, "2")
                health = srv.request("GET", "/healthz")
                assert health.status == 200 and health.json()["status"] == "ok"
                assert health.headers["content-type"] == "application/json"
                # Answered while ingest is stuck (generous: 2 cores shared with another suite).
                assert time.monotonic() - began < 3.0
                assert not first.done() and not second.done()
                lock.release()
                assert first.result(30).status == 200 and second.result(30).status == 200
        finally:
            lock.release()
        text = srv.request("GET", "/metrics").text
        assert 'openpanel_ingest_shed_total{reason="busy"} 2.0' in text
        assert 'openpanel_ingest_requests{state="processing"} 0.0' in text
        assert _paths(srv, "/gate") == ["/gate-1", "/gate-2"]
    finally:
        srv.stop()


def test_healthz_front_answer_is_the_routes_answer(server: LiveServer) -> None:
    reply = server.request("GET", "/healthz")
    assert reply.status == 200
    assert reply.json() == json.loads(msgspec.json.encode(server.runtime.health()))
    assert set(reply.json()) == {"status", "meta", "store", "queues", "failed"}
    # The schema still documents it (the Litestar route stays, for the schema and apps without the front).
    schema = server.request("GET", "/schema/openapi.json").json()
    assert "/healthz" in schema["paths"]


def test_gate_is_first_come_first_served_and_survives_cancelled_waiters() -> None:
    """The gate alone, on a real loop: slots handed over in arrival order, a cancelled waiter gives up
    its place (or the slot it was just handed), and the counts return to zero."""
    order: list[str] = []

    async def scenario() -> tuple[int, int]:
        gate = IngestGate(limit=1, max_waiting=2)
        assert await gate.acquire()  # the one slot

        async def user(name: str) -> None:
            assert await gate.acquire()
            order.append(name)
            await asyncio.sleep(0)
            gate.release()

        a = asyncio.create_task(user("a"))
        b = asyncio.create_task(user("b"))
        await asyncio.sleep(0)
        assert (gate.inflight, gate.waiting) == (1, 2)
        assert not await gate.acquire()  # the waiting room is full: shed
        a.cancel()  # gives up its place while waiting
        await asyncio.sleep(0)
        c = asyncio.create_task(user("c"))
        await asyncio.sleep(0)
        gate.release()  # handed to b, then c
        await asyncio.gather(b, c)
        handed = asyncio.create_task(user("d"))
        assert await gate.acquire()
        await asyncio.sleep(0)
        gate.release()  # handed to d ...
        handed.cancel()  # ... which is cancelled before it runs: the slot comes back
        with contextlib.suppress(asyncio.CancelledError):
            await handed
        return gate.inflight, gate.waiting

    assert asyncio.run(scenario()) == (0, 0)
    assert order == ["b", "c"]
