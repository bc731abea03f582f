"""Ingest hardening (issue 6): no 200 for a request that was not stored, load shedding by event-loop
lag and in-flight cap, and /healthz answered on the raw ASGI front.

Real in-process servers on 127.0.0.1 (tests.harness.LiveServer), real spool and store files.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import apsw
import pytest

from openpanel_lite import paths
from tests.harness import HttpReply, LiveServer
from tests.ingest_support import Site, live_config, screen_view


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose writer does not touch the spool on its own during the test (long interval)."""
    srv = LiveServer(live_config(tmp_path, ingest__flush_interval_ms=60_000))
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
