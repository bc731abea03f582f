"""Helpers for the fault tests that drive a real `openpanel serve` under concurrent keep-alive load
(reliability.md R01, R03, R11, R08, R09, R12): the server process, the load threads, the oracle.

Every event carries a fresh UUID in `properties.__eventId`: the server stores it as the event's id and
the spool dedups retries on it. The clients remember every id that got a 2xx. A request whose fate is
unknown (its connection died with the server, or a stopping server answered 503) is re-sent with the same
body once the server is back, and some already acked events are re-sent on purpose (R11), so each id must
end up in `events.duckdb` exactly once: stored ids == acked ids, no id twice, none that was never sent.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import Any, TextIO

import duckdb
import pytest

PROBE = "crash_probe"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/148.0.0.0 Safari/537.36"
)
# No GeoIP download, small DuckDB, no disk-floor surprises from other jobs on this machine.
BASE_ENV = {
    "OPENPANEL_GEOIP__AUTO_DOWNLOAD": "false",
    "OPENPANEL_STORAGE__DUCKDB__MEMORY_LIMIT": "256MiB",
    "OPENPANEL_STORAGE__DUCKDB__THREADS": "1",
    "OPENPANEL_INGEST__MIN_FREE_DISK_MB": "0",
    "OPENPANEL_INGEST__MIN_FREE_DISK_RATIO": "0",
    "OPENPANEL_SERVER__LOG_LEVEL": "info",
}
KILL9_CYCLES = 20
# R01: restart → accepting within 3 s (p99); the default run only guards against hangs on a shared machine.
READY_P99_S = 3.0
READY_MAX_S = 10.0
SIGTERM_EXIT_S = 8.0


def port_outside_ephemeral_range() -> int:
    """A free port below the kernel's ephemeral range.

    While the server is down the clients keep reconnecting; with a port from the ephemeral range the
    kernel can pick the server's own port as a client's local port and connect the socket to itself
    (TCP simultaneous open), which would then block the restart with "address in use".
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def cli(data_dir: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "openpanel_lite", *args, "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **BASE_ENV},
        timeout=60,
        check=True,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


class Serve:
    """`openpanel serve` on one data dir and port, restarted as often as the test likes."""

    def __init__(self, data_dir: Path, port: int, **env: str) -> None:
        self.data_dir = data_dir
        self.port = port
        self.env = {**os.environ, **BASE_ENV, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self._files: list[TextIO] = []

    def start(self) -> float:
        """Start and wait for /healthz 200; returns the seconds from spawn to ready."""
        assert self.proc is None or self.proc.poll() is not None
        self.runs += 1
        out = open(self.data_dir.parent / f"serve-{self.runs}.out", "w")  # noqa: SIM115 - closed in close()
        err = open(self.data_dir.parent / f"serve-{self.runs}.err", "w")  # noqa: SIM115
        self._files += [out, err]
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "openpanel_lite", "serve"]
            + ["--data-dir", str(self.data_dir), "--port", str(self.port)],
            stdout=out,
            stderr=err,
            env=self.env,
        )
        while True:
            assert self.proc.poll() is None, f"server exited with {self.proc.returncode}: {self.log_text()}"
            status, _ = self.get("/healthz", timeout=1.0)
            if status == 200:
                return time.monotonic() - started
            assert time.monotonic() - started < 30, "server not healthy within 30 s"
            time.sleep(0.02)

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, json.loads(body) if body.startswith(b"{") else body
        except (OSError, http.client.HTTPException):
            return 0, None
        finally:
            conn.close()

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "server died before the kill"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def sigterm(self) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds until exit)."""
        assert self.proc is not None and self.proc.poll() is None, "server died before SIGTERM"
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError("server still running 30 s after SIGTERM") from None
        return rc, time.monotonic() - started

    def log_text(self, run: int | None = None) -> str:
        for f in self._files:
            f.flush()
        return (self.data_dir.parent / f"serve-{run or self.runs}.err").read_text()

    def log_events(self, run: int, event: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log_text(run).splitlines() if line.startswith("{")]
        return [rec for rec in lines if rec.get("event") == event]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for f in self._files:
            f.close()


class Load:
    """`clients` threads, each with one keep-alive connection, posting PROBE events one after another
    (paced to `rate` events/s in total when given). Unknown outcomes are queued and re-sent."""

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        clients: int,
        seconds: float,
        rate: float | None = None,
        resend_acked: float = 0.0,
        seed: int = 0,
        retry_pause_s: float = 0.05,
    ) -> None:
        self.port = port
        self.client_id = client_id
        self.rate = rate
        self.resend_acked = resend_acked
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.sent: dict[str, bytes] = {}  # every id ever sent, with its body
        self.acked: set[str] = set()
        self.acked_order: list[str] = []
        self.acked_at: dict[str, tuple[float, int]] = {}  # id -> (time.monotonic(), status) of its ack
        self.latencies: list[tuple[float, float]] = []  # (sent at, seconds to the answer) of each 2xx
        self.statuses: Counter[int] = Counter()
        self.refused = 0  # connection refused: the server is down, nothing was sent
        self.dropped = 0  # the connection died after the request was written: fate unknown
        self.resent_acked = 0
        # (when it may go again, id): a failed event waits retry_pause_s, whichever worker resends it.
        self.retry: deque[tuple[float, str]] = deque()
        self.inflight = 0
        self.new_events = True
        self.stop_flag = threading.Event()
        self.rng = random.Random(seed)
        self.retry_pause_s = retry_pause_s
        self.threads = [
            threading.Thread(target=self._worker, args=(n, clients), name=f"load-{n}", daemon=True)
            for n in range(clients)
        ]
        for t in self.threads:
            t.start()

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def _next(self) -> tuple[str, bytes] | None:
        with self.lock:
            if self.retry and self.retry[0][0] <= time.monotonic():
                _, event_id = self.retry.popleft()
                return event_id, self.sent[event_id]
            if not self.new_events:
                return None
            if self.acked_order and self.rng.random() < self.resend_acked:
                # R11: a retry of something already acknowledged (same __eventId, same body).
                self.resent_acked += 1
                event_id = self.acked_order[self.rng.randrange(len(self.acked_order))]
                return event_id, self.sent[event_id]
            event_id = str(uuid.uuid4())
            n = len(self.sent)
            body = json.dumps(
                {
                    "type": "track",
                    "payload": {
                        "name": PROBE,
                        "properties": {
                            "__eventId": event_id,
                            "__path": f"https://example.com/page/{n % 97}",
                            "__title": "Crash test",
                            "n": n,
                        },
                    },
                }
            ).encode()
            self.sent[event_id] = body
            return event_id, body

    def _worker(self, n: int, clients: int) -> None:
        headers = {
            "Content-Type": "application/json",
            "openpanel-client-id": self.client_id,
            "openpanel-sdk-name": "web",
            "openpanel-sdk-version": "1.4.1",
            "Origin": "https://example.com",
            "User-Agent": CHROME.replace("148.0.0.0", f"148.0.0.{n}"),
            "Accept-Language": "en",
        }
        interval = clients / self.rate if self.rate else 0.0
        next_at = time.monotonic()
        conn: http.client.HTTPConnection | None = None
        while not self.stop_flag.is_set() and time.monotonic() < self.deadline:
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at = max(next_at + interval, time.monotonic() - 1.0)
            item = self._next()
            if item is None:
                time.sleep(0.005)
                continue
            event_id, body = item
            with self.lock:
                self.inflight += 1
            status: int | None = None
            refused = False
            sent_at = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                conn.request("POST", "/track", body, headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.will_close:
                    conn.close()
                    conn = None
            except ConnectionRefusedError:
                refused = True
            except (OSError, http.client.HTTPException):
                pass
            if status is None and conn is not None:
                conn.close()
                conn = None
            with self.lock:
                self.inflight -= 1
                if status is not None:
                    self.statuses[status] += 1
                if status is not None and 200 <= status < 300:
                    self.latencies.append((sent_at, time.monotonic() - sent_at))
                    if event_id not in self.acked:
                        self.acked.add(event_id)
                        self.acked_order.append(event_id)
                        self.acked_at[event_id] = (time.monotonic(), status)
                elif status is None or status >= 500:
                    # Not accepted, or fate unknown: re-sent later with the same body (as SDKs retry).
                    if event_id not in self.acked:
                        self.retry.append((time.monotonic() + self.retry_pause_s, event_id))
                    if refused:
                        self.refused += 1
                    elif status is None:
                        self.dropped += 1
            if status is None or status >= 500:
                time.sleep(0.05)  # the server is down, stopping or failing: do not spin
        if conn is not None:
            conn.close()

    def settle(self, timeout_s: float) -> None:
        """Stop making new events; return once every sent id is acked (retries done) or time is up."""
        with self.lock:
            self.new_events = False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if not self.retry and self.inflight == 0 and len(self.acked) == len(self.sent):
                    return
            time.sleep(0.02)

    def stop(self) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a load thread is stuck"


def stored_probe_ids(data_dir: Path) -> Counter[str]:
    """Event ids of PROBE rows in events.duckdb (read after the server has exited), with their counts."""
    with duckdb.connect(str(data_dir / "events.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT id::VARCHAR, count(*) FROM events WHERE name = ? GROUP BY 1", [PROBE])
        return Counter({str(i): int(c) for i, c in rows.fetchall()})


def other_event_names(data_dir: Path) -> set[str]:
    with duckdb.connect(str(data_dir / "events.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT DISTINCT name FROM events WHERE name <> ?", [PROBE]).fetchall()
        return {str(r[0]) for r in rows}


def spool_pending(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "spool.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])


def assert_exactly_once(
    data_dir: Path,
    sent: set[str],
    acked: set[str],
    *,
    all_acked: bool,
    context: str,
    other_names: frozenset[str] = frozenset({"session_start"}),
) -> Counter[str]:
    stored = stored_probe_ids(data_dir)
    twice = {i: c for i, c in stored.items() if c > 1}
    assert twice == {}, f"{context}: ids stored more than once: {list(twice.items())[:5]}"
    never_sent = set(stored) - sent
    assert never_sent == set(), f"{context}: {len(never_sent)} stored ids were never sent"
    lost = acked - set(stored)
    assert lost == set(), f"{context}: {len(lost)} of {len(acked)} acked ids are not stored"
    if all_acked:
        assert set(stored) == acked == sent, context
    # Only the sessions the probes started (and what the test names) may be there besides the probes.
    assert other_event_names(data_dir) <= other_names, context
    return stored


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def kill9_loop(site: tuple[Path, str, dict[str, Any]], cycles: int) -> None:
    data_dir, client_id, _ = site
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    ctx = f"seed={seed}"
    # A short flush interval: kills land before, during and after store writes.
    server = Serve(data_dir, port_outside_ephemeral_range(), OPENPANEL_INGEST__FLUSH_INTERVAL_MS="100")
    load: Load | None = None
    try:
        ready: list[float] = []
        acks_per_cycle: list[int] = []
        load = Load(server.port, client_id, clients=8, seconds=cycles * 12 + 60, resend_acked=0.05, seed=seed)
        for cycle in range(cycles):
            ready.append(server.start())
            before = load.acked_count()
            waited = time.monotonic()
            while load.acked_count() == before:
                assert time.monotonic() - waited < 10, (
                    f"{ctx}: cycle {cycle}: no 2xx within 10 s; statuses so far {dict(load.statuses)}"
                )
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 1.0))
            server.kill9()
            acks_per_cycle.append(load.acked_count() - before)
        # The last start: unknown outcomes are re-sent, then a clean stop.
        ready.append(server.start())
        load.settle(30)
        rc, stop_s = server.sigterm()
        load.stop()
        assert rc == 0, f"{ctx}: exit code {rc} after SIGTERM: {server.log_text()}"
        assert stop_s <= SIGTERM_EXIT_S, f"{ctx}: SIGTERM took {stop_s:.1f} s"
        assert load.new_events is False and not load.retry, ctx
        assert set(load.statuses) <= {200, 503}, f"{ctx}: unexpected statuses {load.statuses}"
        stored = assert_exactly_once(data_dir, set(load.sent), load.acked, all_acked=True, context=ctx)
        assert spool_pending(data_dir) == 0, ctx
        replayed = sum(
            rec["records"]
            for run in range(2, server.runs + 1)
            for rec in server.log_events(run, "spool_replayed")
        )
        # The loop really crashed mid-stream: requests died in flight, retries and R11 re-sends happened,
        # and restarts had acked records to replay from the spool.
        assert load.dropped > 0 and load.resent_acked > 0 and replayed > 0, ctx
        p99 = percentile(ready, 0.99)
        print(
            f"\nkill -9 loop ({ctx}): {cycles} cycles, {len(stored)} events stored once = acked "
            f"({sum(acks_per_cycle)} acked before kills), {load.dropped} requests cut by a kill, "
            f"{load.resent_acked} acked events re-sent, {replayed} spool records replayed; time to "
            f"ready p50 {percentile(ready, 0.5):.2f} s, p99 {p99:.2f} s, max {max(ready):.2f} s; "
            f"SIGTERM {stop_s:.2f} s"
        )
        limit = READY_P99_S if cycles >= 100 else READY_MAX_S
        assert p99 <= limit, f"{ctx}: time to ready p99 {p99:.2f} s > {limit} s"
    finally:
        if load is not None:
            load.stop_flag.set()
        server.close()


def sigterm_drain(site: tuple[Path, str, dict[str, Any]], iterations: int) -> None:
    data_dir, client_id, reader = site
    read_headers = {
        "openpanel-client-id": str(reader["client_id"]),
        "openpanel-client-secret": str(reader["client_secret"]),
    }
    # A long flush interval: when SIGTERM arrives, everything acked is still waiting for the store.
    server = Serve(data_dir, port_outside_ephemeral_range(), OPENPANEL_INGEST__FLUSH_INTERVAL_MS="10000")
    load: Load | None = None
    sent: set[str] = set()
    acked: set[str] = set()
    stored_before = 0  # PROBE rows left by earlier iterations
    try:
        for it in range(iterations):
            ctx = f"iteration {it}"
            server.start()
            load = Load(server.port, client_id, clients=4, seconds=60, rate=1000)
            while load.acked_count() < 1000:
                assert time.monotonic() < load.deadline - 50, f"{ctx}: not 1000 2xx within 10 s"
                time.sleep(0.01)
            status, page = server.get(f"/export/events?event={PROBE}&limit=1", read_headers)
            assert status == 200, page
            acked_then = load.acked_count()
            backlog = acked_then - (page["meta"]["totalCount"] - stored_before)
            assert backlog >= 900, f"{ctx}: only {backlog} acked events waiting for the store at SIGTERM"
            rc, stop_s = server.sigterm()  # the load keeps going while the server drains
            load.stop()
            assert rc == 0, f"{ctx}: exit code {rc}: {server.log_text()}"
            assert stop_s <= SIGTERM_EXIT_S, f"{ctx}: exit took {stop_s:.2f} s"
            assert set(load.statuses) <= {200, 503}, f"{ctx}: {load.statuses}"
            # Drained before exit: every acked event is in the store and the spool is empty.
            sent |= set(load.sent)
            acked |= load.acked
            stored = assert_exactly_once(data_dir, sent, acked, all_acked=False, context=ctx)
            assert spool_pending(data_dir) == 0, ctx
            run = server.runs
            server.start()
            assert server.log_events(run + 1, "spool_replayed")[0]["records"] == 0, ctx
            status, health = server.get("/healthz")
            assert health["queues"] == {"store_writer": {"size": 0}, "spool_pending": {"size": 0}}, ctx
            status, page = server.get(f"/export/events?event={PROBE}&limit=1", read_headers)
            stored_before = sum(stored.values())
            assert (status, page["meta"]["totalCount"]) == (200, stored_before), ctx
            rc, _ = server.sigterm()
            assert rc == 0, ctx
            print(
                f"\nSIGTERM drain ({ctx}): {len(load.acked)} acked, {backlog} waiting for the store at "
                f"SIGTERM, exit 0 after {stop_s:.2f} s, {len(stored)} stored, spool empty"
            )
    finally:
        if load is not None:
            load.stop_flag.set()
        server.close()


def long_form(request: pytest.FixtureRequest, test_id: str) -> None:
    """Long forms run only when selected with -m reliability (pyproject's addopts deselect them)."""
    if "reliability" not in (request.config.getoption("markexpr") or "") or "not reliability" in (
        request.config.getoption("markexpr") or ""
    ):
        pytest.skip(f"{test_id} long run: select it with -m reliability")


def make_crash_site(tmp_path: Path) -> tuple[Path, str, dict[str, Any]]:
    """A data dir with a project and a write client (created with the CLI before any server runs)."""
    data_dir = tmp_path / "data"
    project = cli(data_dir, "project", "create", "Crash", "--domain", "example.com")
    reader = cli(data_dir, "client", "create", project["project_id"], "--type", "read")
    return data_dir, str(project["client_id"]), reader
