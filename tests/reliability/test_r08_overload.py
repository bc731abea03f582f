"""R08 overload-10x: a real `openpanel serve` first measured at its sustained capacity (wrk, 64
keep-alive connections, as bench/ingest.py), then hit with 10x the requests in flight (160 connections
each pipelining 4) for `seconds`; a Python load with per-id bookkeeping runs alongside. Checked in the same
run: no crash, peak RSS ≤ 768 MiB, goodput ≥ 90% of the measured capacity, every shed answer is
429/503 with Retry-After, /healthz answers 200 throughout and fast (p99 ≤ 100 ms in the long form),
and no acknowledged event is lost (per id for the Python load; for wrk, stored rows of its phase ≥ its
2xx count and no row twice). The Python load re-sends a shed event after 500 ms (the OpenPanel SDK's
first backoff) in the default config, and after 50 ms in the shedding one (a resend within the 100 ms
content-lock window once lost events; fixed in ingest/service.py).

What keeps /healthz responsive: at most ingest.max_inflight_requests requests are processed at once
(the rest wait, body unread), the event loop's lag sheds ingest above ingest.shed_loop_lag_ms, and
/healthz is answered on the raw ASGI front (ingest/fastpath.py). The shedding form makes every shed
path run: a small waiting room (more than max_waiting_requests waiting → 503).

wrk is closed-loop: the offered rate is what the server answers plus what waits on the connections;
the test reports the answered rate and the in-flight depth. Short form: 5 s capacity + 10 s overload.
Long form (-m reliability): 20 s capacity + 120 s overload (the issue's 2 minutes).
"""

from __future__ import annotations

import re
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
# The shedding form: only 16 requests may wait for one of the 128 in-flight slots. granian handles a
# connection's pipelined requests one at a time, so wrk's 160 connections put up to 160 in flight (and
# for a moment two per connection: the next request can arrive before the last one's task has ended):
# the excess over 144 gets 503 + Retry-After. The capacity phase's 64 connections stay within 128.
# (The group-commit queue cap is no longer reached by overload: the gate bounds the appends waiting
# for it. Its 503 is tested in test_track_extra and R06.)
SHEDDING = {"OPENPANEL_INGEST__MAX_WAITING_REQUESTS": "16"}
HEALTH_P99_TARGET_S = 0.1

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
    env: dict[str, str],
    *,
    min_goodput: float = 0.9,
    health_p99_s: float | None = HEALTH_P99_TARGET_S,
) -> str:
    data_dir, client_id, _ = site
    script = write_script(tmp_path / "track.lua", client_id)
    shedding = bool(env)
    server = Serve(data_dir, port_outside_ephemeral_range(), **env)
    load: Load | None = None
    watch: Watch | None = None
    try:
        server.start()
        warm = {"threads": 1, "connections": CAPACITY_CONNECTIONS}
        run_wrk(script, server.port, seconds=3, phase=9, **warm)  # warm-up, not counted
        cap = run_wrk(script, server.port, seconds=capacity_s, phase=1, **warm)
        capacity = cap.ok_per_s()
        assert cap.shed == cap.other == 0, (cap, server_shed_counts(server))
        watch = Watch(server)
        retry_pause_s = 0.05 if shedding else 0.5
        load = Load(
            server.port, client_id, clients=2, seconds=seconds + 60, rate=50, retry_pause_s=retry_pause_s
        )
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
        shed_by = server_shed_counts(server)
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
        f"{'shedding config ' + str(env) if shedding else 'default config'}: capacity {capacity:.0f} ev/s "
        f"(wrk c={CAPACITY_CONNECTIONS}, p99 {cap.p99_ms:.0f} ms); "
        f"overload {seconds} s with c={OVERLOAD_CONNECTIONS} x {DEPTH} pipelined: answered "
        f"{answered:.0f} req/s, goodput {goodput:.0f} ev/s = {100 * goodput / capacity:.0f}% of capacity, "
        f"shed {over.shed} (all with Retry-After; server-side by reason {shed_by}), other statuses 0; "
        f"peak RSS "
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
    if health_p99_s is not None:
        assert health_p99 <= health_p99_s, summary
    if shedding:
        assert over.shed > 0, "the shedding config never shed: the shed path was not exercised"
        assert shed_by.get("busy", 0) > 0, shed_by
    return summary


def server_shed_counts(server: Serve) -> dict[str, int]:
    """openpanel_ingest_shed_total by reason, from the server's /metrics."""
    status, body = server.get("/metrics", timeout=10)
    assert status == 200
    text = body.decode() if isinstance(body, bytes) else str(body)
    found = re.findall(r'^openpanel_ingest_shed_total\{reason="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {reason: int(float(n)) for reason, n in found}


# The short forms' 10 s on a machine shared with other suites: /healthz p99 is checked against a wider
# bound (a 10 s window has ~45 checks, so its p99 is the worst one); the long form checks the target.
SHORT_HEALTH_P99_S = 0.5


@needs_wrk
def test_r08_overload_short(crash_site: Site, tmp_path: Path) -> None:
    # Default config: the spool keeps up, nothing is shed; requests wait for an in-flight slot.
    overload(crash_site, tmp_path, 5, 10, {}, min_goodput=0.7, health_p99_s=SHORT_HEALTH_P99_S)


@needs_wrk
def test_r08_overload_shedding_short(crash_site: Site, tmp_path: Path) -> None:
    overload(
        crash_site,
        tmp_path,
        5,
        10,
        SHEDDING,
        min_goodput=0.7,
        health_p99_s=SHORT_HEALTH_P99_S,
    )


@needs_wrk
@pytest.mark.reliability
def test_r08_overload(crash_site: Site, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    long_form(request, "R08")
    overload(crash_site, tmp_path, 20, 120, {})


@needs_wrk
@pytest.mark.reliability
def test_r08_overload_shedding(crash_site: Site, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    long_form(request, "R08")
    overload(crash_site, tmp_path, 20, 120, SHEDDING)
