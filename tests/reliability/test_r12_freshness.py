"""R12 freshness: the time from a 2xx on /track to the event being visible through the query API
(`GET /export/events`, the same store reads the dashboard runs), under background load, with the
default flush interval (ingest.flush_interval_ms = 1000).

Short form: 15 marker events. Long form (-m reliability): 200. Targets: p95 ≤ 2 s, p99 ≤ 5 s.
"""

from __future__ import annotations

import http.client
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crash_support import (
    CHROME,
    Load,
    Serve,
    cli,
    long_form,
    percentile,
    port_outside_ephemeral_range,
)

Site = tuple[Path, str, dict[str, Any]]


def send_marker(port: int, client_id: str, name: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = json.dumps({"type": "track", "payload": {"name": name, "properties": {"marker": True}}})
        headers = {
            "Content-Type": "application/json",
            "openpanel-client-id": client_id,
            "Origin": "https://example.com",
            "User-Agent": CHROME,
        }
        conn.request("POST", "/track", body, headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()


def freshness(site: Site, markers: int) -> None:
    data_dir, client_id, reader = site
    project_id = str(reader["project_id"])
    # The export API allows 100 requests per 10 s per client: poll with a few read clients in turn.
    readers = [reader] + [cli(data_dir, "client", "create", project_id, "--type", "read") for _ in range(3)]
    auth = itertools.cycle(
        [
            {"openpanel-client-id": str(r["client_id"]), "openpanel-client-secret": str(r["client_secret"])}
            for r in readers
        ]
    )
    server = Serve(data_dir, port_outside_ephemeral_range())
    load: Load | None = None
    delays: list[float] = []
    try:
        server.start()
        load = Load(server.port, client_id, clients=2, seconds=markers * 3 + 60, rate=100)
        for k in range(markers):
            name = f"fresh_{k}"
            send_marker(server.port, client_id, name)
            acked = time.monotonic()
            while True:
                status, page = server.get(f"/export/events?event={name}&limit=1", next(auth))
                assert status == 200, page
                if page["meta"]["totalCount"] == 1:
                    delays.append(time.monotonic() - acked)
                    break
                assert time.monotonic() - acked < 30, f"{name} not visible within 30 s"
                time.sleep(0.05)
            time.sleep(0.3)  # markers land at different points of the flush cycle
        load.stop()
        rc, _ = server.sigterm()
        assert rc == 0, server.log_text()
    finally:
        if load is not None:
            load.stop_flag.set()
        server.close()
    p50, p95, p99 = (percentile(delays, q) for q in (0.5, 0.95, 0.99))
    print(
        f"\nR12: {markers} markers under ~100 ev/s: 2xx → visible p50 {p50:.2f} s, p95 {p95:.2f} s, "
        f"p99 {p99:.2f} s, max {max(delays):.2f} s"
    )
    assert p95 <= 2.0 and p99 <= 5.0


def test_r12_freshness_short(crash_site: Site) -> None:
    freshness(crash_site, 15)


@pytest.mark.reliability
def test_r12_freshness(crash_site: Site, request: pytest.FixtureRequest) -> None:
    long_form(request, "R12")
    freshness(crash_site, 200)
