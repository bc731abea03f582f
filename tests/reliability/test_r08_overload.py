"""R08 overload-10x: a real `openpanel serve` first measured at its sustained capacity (wrk, 64
keep-alive connections, as bench/ingest.py), then hit with 10x the requests in flight (160 connections
each pipelining 4) for `seconds`; a Python load with per-id bookkeeping runs alongside. Checked in the same
run: no crash, peak RSS ≤ 768 MiB, goodput ≥ 90% of the measured capacity, every shed answer is
429/503 with Retry-After, /healthz answers 200 throughout, and no acknowledged event is lost (per id for
the Python load; for wrk, stored rows of its phase ≥ its 2xx count and no row twice). The Python load
re-sends a shed event after 500 ms (the OpenPanel SDK's first backoff; see R06's xfail for why a resend
within 100 ms is lost).

wrk is closed-loop: the offered rate is what the server answers plus what waits on the connections;
the test reports the answered rate and the in-flight depth. Short form: 5 s capacity + 10 s overload.
Long form (-m reliability): 20 s capacity + 120 s overload (the issue's 2 minutes).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crash_support import (
    Load,
    Serve,
    assert_exactly_once,
    long_form,
    percentile,
    port_outside_ephemeral_range,
    stored_probe_ids,
)
from tests.reliability.wrk_support import generated, have_wrk, run_wrk, write_script, wrk_ids

Site = tuple[Path, str, dict[str, Any]]
RSS_LIMIT_MIB = 768
# Capacity as bench/ingest.py measures it (64 keep-alive connections); the overload keeps 10x as many
# requests in flight (160 connections, 4 pipelined each).
CAPACITY_CONNECTIONS = 64
OVERLOAD_CONNECTIONS = 160
DEPTH = 4
# Appends waiting for the group commit; 640 requests in flight overflow it, so the 503 path runs.
SHED_QUEUE_CAP = 64

needs_wrk = pytest.mark.skipif(not have_wrk(), reason="needs wrk (bash scripts/test.sh installs it)")


def tree_rss_mib(pid: int) -> float:
    """Resident memory of the process and its children (granian may fork), in MiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Watch:
    """Samples the server's RSS and times /healthz, each on its own thread, until stopped."""

    def __init__(self, server: Serve) -> None:
        self.server = server
        self.rss: list[float] = []
        self.health: list[tuple[int, float]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._rss, self._health)]
        for t in self.threads:
            t.start()

    def _rss(self) -> None:
        assert self.server.proc is not None
        while not self.stop.is_set():
            self.rss.append(tree_rss_mib(self.server.proc.pid))
            time.sleep(0.25)

    def _health(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            status, _ = self.server.get("/healthz", timeout=10)
            self.health.append((status, time.monotonic() - began))
            time.sleep(0.2)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def overload(
    site: Site,
    tmp_path: Path,
    capacity_s: int,
    seconds: int,
    queue_cap: int | None,
    *,
    min_goodput: float = 0.9,
) -> str:
    data_dir, client_id, _ = site
    script = write_script(tmp_path / "track.lua", client_id)
    env = {} if queue_cap is None else {"OPENPANEL_INGEST__QUEUE_MAX_EVENTS": str(queue_cap)}
    server = Serve(data_dir, port_outside_ephemeral_range(), **env)
    load: Load | None = None
    watch: Watch | None = None
    try:
        server.start()
        warm = {"threads": 1, "connections": CAPACITY_CONNECTIONS}
        run_wrk(script, server.port, seconds=3, phase=9, **warm)  # warm-up, not counted
        cap = run_wrk(script, server.port, seconds=capacity_s, phase=1, **warm)
        capacity = cap.ok_per_s()
        assert cap.shed == cap.other == 0, cap
        watch = Watch(server)
        load = Load(server.port, client_id, clients=2, seconds=seconds + 60, rate=50, retry_pause_s=0.5)
        over = run_wrk(
            script,
            server.port,
            threads=2,
            connections=OVERLOAD_CONNECTIONS,
            seconds=seconds,
            phase=2,
            depth=DEPTH,
        )
        assert server.proc is not None and server.proc.poll() is None, "the server died under overload"
        watch.close()
        load.settle(30)
        load.stop()
        rc, _ = server.sigterm()
        assert rc == 0, server.log_text()
    finally:
        if watch is not None:
            watch.close()
        if load is not None:
            load.stop_flag.set()
        server.close()

    ids = set(stored_probe_ids(data_dir))
    from_wrk = generated(ids, cap, 1) | generated(ids, over, 2) | wrk_ids(ids, 9)
    sent = set(load.sent) | from_wrk
    stored = assert_exactly_once(data_dir, sent, load.acked, all_acked=False, context="R08")
    assert load.acked == set(load.sent), "the Python load's events were not all acknowledged in the end"
    assert set(load.statuses) <= {200, 429, 503}, load.statuses
    for result, phase in ((cap, 1), (over, 2)):
        from_wrk = len(wrk_ids(set(stored), phase))
        # Every 2xx is stored; requests still in flight when wrk stopped may be stored unanswered.
        assert result.ok <= from_wrk <= result.ok + OVERLOAD_CONNECTIONS * DEPTH, (phase, result)
    assert over.other == 0 and over.shed_without_retry_after == 0, over
    goodput = over.ok_per_s()
    answered = over.answered / over.seconds
    peak_rss = max(watch.rss)
    health_ok = sum(1 for status, _ in watch.health if status == 200)
    health_p99 = percentile([s for _, s in watch.health], 0.99)
    summary = (
        f"queue cap {queue_cap or 'default'}: capacity {capacity:.0f} ev/s "
        f"(wrk c={CAPACITY_CONNECTIONS}, p99 {cap.p99_ms:.0f} ms); "
        f"overload {seconds} s with c={OVERLOAD_CONNECTIONS} x {DEPTH} pipelined: answered "
        f"{answered:.0f} req/s, goodput {goodput:.0f} ev/s = {100 * goodput / capacity:.0f}% of capacity, "
        f"shed {over.shed} (all with Retry-After), other statuses 0; peak RSS "
        f"{peak_rss:.0f} MiB; /healthz {health_ok}/{len(watch.health)} 200, p99 {1000 * health_p99:.0f} ms; "
        f"Python load {len(load.acked)} acked ({load.statuses[503]} of its requests shed), lost 0; "
        f"{len(stored)} probe rows, duplicates 0"
    )
    print(f"\nR08 {summary}")
    assert peak_rss <= RSS_LIMIT_MIB
    # The target (≥ 90 %) is the long form's; the short forms' 5 s and 10 s windows on a shared machine
    # swing more than that, so they only check that most of the capacity survives the overload.
    assert goodput >= min_goodput * capacity
    assert health_ok == len(watch.health) and health_ok > 0
    if queue_cap is not None:
        assert over.shed > 0, "the small queue cap never shed: the shed path was not exercised"
    return summary


@needs_wrk
def test_r08_overload_short(crash_site: Site, tmp_path: Path) -> None:
    # Default config: the spool keeps up, nothing is shed, latency grows instead.
    overload(crash_site, tmp_path, 5, 10, None, min_goodput=0.7)


@needs_wrk
def test_r08_overload_shedding_short(crash_site: Site, tmp_path: Path) -> None:
    # A small group-commit queue cap, so the overload really meets the 503 path.
    overload(crash_site, tmp_path, 5, 10, SHED_QUEUE_CAP, min_goodput=0.7)


@needs_wrk
@pytest.mark.reliability
def test_r08_overload(crash_site: Site, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    long_form(request, "R08")
    overload(crash_site, tmp_path, 20, 120, None)


@needs_wrk
@pytest.mark.reliability
def test_r08_overload_shedding(crash_site: Site, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    long_form(request, "R08")
    overload(crash_site, tmp_path, 20, 120, SHED_QUEUE_CAP)
