"""R11 dedup-retry: every 10th acknowledged event is sent again with the same `properties.__eventId`
three more times, 0.5 s, 1.5 s and 3.5 s after its ack (the OpenPanel SDK's 500/1000/2000 ms backoff),
while new events keep flowing; the store then holds each id exactly once (duplicate rate 0).

(The kill -9 loop of R01 also re-sends acked events across crashes.) Short form: 6 s at ~300 ev/s;
long form (-m reliability): 60 s at ~1,000 ev/s.
"""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crash_support import (
    CHROME,
    Load,
    Serve,
    assert_exactly_once,
    long_form,
    port_outside_ephemeral_range,
)

Site = tuple[Path, str, dict[str, Any]]
BACKOFF_S = (0.5, 1.0, 2.0)


class Retrier:
    """Re-sends every 10th acked event 3 times on the SDK's backoff schedule, on its own connection."""

    def __init__(self, load: Load, port: int, client_id: str) -> None:
        self.load = load
        self.port = port
        self.headers = {
            "Content-Type": "application/json",
            "openpanel-client-id": client_id,
            "Origin": "https://example.com",
            "User-Agent": CHROME,
        }
        self.statuses: list[int] = []
        self.chosen: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        schedule: list[tuple[float, str]] = []
        seen = 0
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        while not self.stop.is_set() or schedule:
            with self.load.lock:
                fresh = self.load.acked_order[seen:]
                seen = len(self.load.acked_order)
            now = time.monotonic()
            for n, event_id in enumerate(fresh, start=seen - len(fresh)):
                if n % 10 == 0 and event_id not in self.chosen:
                    self.chosen.add(event_id)
                    at = now
                    for delay in BACKOFF_S:
                        at += delay
                        schedule.append((at, event_id))
            schedule.sort()
            while schedule and schedule[0][0] <= time.monotonic():
                _, event_id = schedule.pop(0)
                conn.request("POST", "/track", self.load.sent[event_id], self.headers)
                resp = conn.getresponse()
                resp.read()
                self.statuses.append(resp.status)
            time.sleep(0.01)
        conn.close()


def dedup_retry(site: Site, seconds: float, rate: float) -> None:
    data_dir, client_id, _ = site
    server = Serve(data_dir, port_outside_ephemeral_range())
    try:
        server.start()
        load = Load(server.port, client_id, clients=4, seconds=seconds, rate=rate)
        retrier = Retrier(load, server.port, client_id)
        time.sleep(seconds)
        load.settle(10)
        load.stop()
        retrier.stop.set()
        retrier.thread.join(30)
        assert not retrier.thread.is_alive()
        rc, _ = server.sigterm()
        assert rc == 0, server.log_text()
        assert set(load.statuses) == {200}, load.statuses
        assert retrier.statuses and set(retrier.statuses) == {200}, set(retrier.statuses)
        assert len(retrier.statuses) == 3 * len(retrier.chosen)
        stored = assert_exactly_once(data_dir, set(load.sent), load.acked, all_acked=True, context="R11")
        resent = len(retrier.statuses)
        print(
            f"\nR11: {len(load.acked)} events acked, {len(retrier.chosen)} of them re-sent 3x "
            f"({resent} retries, {100 * resent / (len(load.acked) + resent):.1f}% of requests); "
            f"stored rows {sum(stored.values())} == distinct ids {len(stored)}: duplicates 0"
        )
    finally:
        server.close()


def test_r11_dedup_retry_short(crash_site: Site) -> None:
    dedup_retry(crash_site, 6, 300)


@pytest.mark.reliability
def test_r11_dedup_retry(crash_site: Site, request: pytest.FixtureRequest) -> None:
    long_form(request, "R11")
    dedup_retry(crash_site, 60, 1000)
