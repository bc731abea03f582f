"""R09 burst-drain: a burst as fast as wrk can send it (64 keep-alive connections, the rate
bench/ingest.py sustains) for `burst_s`, then ~100 ev/s from the Python load: nothing is shed during
the burst (the spool absorbs what the store writer has not written yet), and the writer's backlog is 0
again soon after. Target (reliability.md §7): 5,000 ev/s for 60 s, 0 shed, backlog 0 within 300 s; the
test reports the burst rate this machine reached.

Short form: a 5 s burst. Long form (-m reliability): a 60 s burst.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crash_support import (
    Load,
    Serve,
    assert_exactly_once,
    long_form,
    port_outside_ephemeral_range,
    stored_probe_ids,
)
from tests.reliability.wrk_support import generated, have_wrk, run_wrk, write_script, wrk_ids

Site = tuple[Path, str, dict[str, Any]]
CONNECTIONS = 64
DRAIN_LIMIT_S = 300


def backlog(server: Serve) -> tuple[int, int]:
    """(events the store writer holds or has still to read back, records left in the spool)."""
    status, health = server.get("/healthz", timeout=10)
    assert status == 200, health
    return int(health["queues"]["store_writer"]["size"]), int(health["queues"]["spool_pending"]["size"])


def burst_drain(site: Site, tmp_path: Path, burst_s: int) -> None:
    data_dir, client_id, _ = site
    script = write_script(tmp_path / "track.lua", client_id)
    server = Serve(data_dir, port_outside_ephemeral_range())
    load: Load | None = None
    try:
        server.start()
        burst = run_wrk(script, server.port, threads=1, connections=CONNECTIONS, seconds=burst_s, phase=1)
        ended = time.monotonic()
        peak = backlog(server)[0]
        # The drain is timed with nothing new arriving (a trickle keeps the writer's queue from ever
        # reading 0 between two flushes); the ~100 ev/s trickle follows.
        while backlog(server)[0] > 0:
            assert time.monotonic() - ended < DRAIN_LIMIT_S, f"backlog not drained within {DRAIN_LIMIT_S} s"
            time.sleep(0.02)
        drained_s = time.monotonic() - ended
        load = Load(server.port, client_id, clients=2, seconds=60, rate=100, retry_pause_s=0.5)
        time.sleep(5.0)
        load.settle(20)
        load.stop()
        rc, _ = server.sigterm()
        assert rc == 0, server.log_text()
    finally:
        if load is not None:
            load.stop_flag.set()
        server.close()
    ids = set(stored_probe_ids(data_dir))
    sent = set(load.sent) | generated(ids, burst, 1)
    stored = assert_exactly_once(data_dir, sent, load.acked, all_acked=False, context="R09")
    assert load.acked == set(load.sent)
    from_wrk = len(wrk_ids(ids, 1))
    assert burst.ok <= from_wrk <= burst.ok + CONNECTIONS, burst
    assert burst.shed == 0 and burst.other == 0 and burst.errors == 0, burst
    assert set(load.statuses) == {200}, load.statuses
    print(
        f"\nR09: burst {burst_s} s at {burst.ok_per_s():.0f} ev/s accepted (wrk c={CONNECTIONS}, p99 "
        f"{burst.p99_ms:.0f} ms), shed 0; writer backlog {peak} events at the burst's end, 0 after "
        f"{drained_s:.2f} s; then ~100 ev/s: {len(load.acked)} acked; {len(stored)} rows, lost 0, "
        f"duplicates 0"
    )


@pytest.mark.skipif(not have_wrk(), reason="needs wrk (bash scripts/test.sh installs it)")
def test_r09_burst_drain_short(crash_site: Site, tmp_path: Path) -> None:
    burst_drain(crash_site, tmp_path, 5)


@pytest.mark.skipif(not have_wrk(), reason="needs wrk (bash scripts/test.sh installs it)")
@pytest.mark.reliability
def test_r09_burst_drain(crash_site: Site, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    long_form(request, "R09")
    burst_drain(crash_site, tmp_path, 60)
