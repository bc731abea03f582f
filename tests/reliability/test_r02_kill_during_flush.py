"""R02 kill9-during-flush: a child process runs the real spool → StoreWriter → DuckDB hand-off under 8
concurrent clients and SIGKILLs itself at one of three points of a flush:

- `insert_before_commit`: the batch's INSERTs (and its watermark UPDATE) ran, COMMIT did not;
- `after_commit`: the transaction (rows + watermark, one commit by design: reliability §0 item 2) is
  durable but the writer has not recorded it (the writer's `after_append` fault hook);
- `during_checkpoint`: a timer fires 0-4 ms into DuckDB's CHECKPOINT (whether it was still running
  is reported: the child prints when the CHECKPOINT returned).

Each kill is followed by the next child, which replays the spool; at the end a last recovery must find
every acknowledged id exactly once. Short form: 3 kills per point. Long form (-m reliability): 50 per
point, as reliability.md §7.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from openpanel_lite.ingest.spool import Spool
from openpanel_lite.ingest.writer import StoreWriter
from openpanel_lite.storage.duckdb import DuckDBStore
from tests.reliability.crash_support import long_form

REPO = Path(__file__).resolve().parents[2]
POINTS = ("insert_before_commit", "after_commit", "during_checkpoint")

CHILD = r"""
import asyncio, os, random, signal, sys, threading, uuid
from datetime import datetime
from pathlib import Path
from openpanel_lite.ingest.spool import Spool, SpoolRecord
from openpanel_lite.ingest.writer import StoreWriter
from openpanel_lite.storage.duckdb import DuckDBStore
from openpanel_lite.storage.rows import EventRow

data, run, point = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
nth, seed = int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
seen = {"commit": 0, "checkpoint": 0, "after_append": 0}

def say(line):
    # One write per line: the DuckDB thread and the loop both report, and print() writes in two parts.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

def die():
    os.kill(os.getpid(), signal.SIGKILL)

class Con:
    # The store's write connection with R02's kill points; everything else passes through.
    def __init__(self, inner):
        self._inner = inner
    def __getattr__(self, name):
        return getattr(self._inner, name)
    def commit(self):
        seen["commit"] += 1
        if point == "insert_before_commit" and seen["commit"] == nth:
            say("kill")
            die()
        return self._inner.commit()
    def execute(self, sql, *args):
        if sql == "CHECKPOINT":
            seen["checkpoint"] += 1
            if point == "during_checkpoint" and seen["checkpoint"] == nth:
                say("kill")
                threading.Timer(rng.uniform(0, 0.004), die).start()
                result = self._inner.execute(sql, *args)
                say("checkpoint_returned")
                return result
        return self._inner.execute(sql, *args)

def hook(step):
    if step == "after_append":
        seen["after_append"] += 1
        if point == "after_commit" and seen["after_append"] == nth:
            say("kill")
            die()

async def main():
    store = DuckDBStore(data / "events.duckdb", memory_limit="256MiB", threads=1)
    store.migrate()
    store._con = Con(store._con)
    spool = Spool(data / "spool.sqlite", min_free_bytes=0, min_free_ratio=0.0)
    writer = StoreWriter(spool, store, flush_interval_ms=5, flush_max_events=40,
                         checkpoint_interval_s=0.05, fault_hook=hook)
    await writer.start()
    say("ready")
    counter = iter(range(1, 10**9))

    async def client():
        for i in counter:
            n = (run << 32) | i
            rec = SpoolRecord(events=(EventRow(id=uuid.UUID(int=n), name="e", project_id="p",
                                               properties={"pad": "x" * 200},
                                               created_at=datetime(2024, 1, 1)),))
            if await spool.append(rec, f"id-{n}") is None:
                say(f"lost {n}")
            say(f"ack {n}")
            if i % 7 == 0 and await spool.append(rec, f"id-{n}") is not None:  # an SDK retry
                say(f"dup {n}")

    await asyncio.gather(*(client() for _ in range(8)))

asyncio.run(main())
"""


def run_child(data: Path, run: int, point: str, nth: int) -> tuple[set[int], bool, bool]:
    """One child life; (acked ids, the kill point was reached, a checkpoint kill landed mid-CHECKPOINT)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(run), point, str(nth), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    acked: set[int] = set()
    ready = killed = returned = False
    for line in proc.stdout:
        kind, _, value = line.strip().partition(" ")
        if kind == "ready":
            ready = True
        elif kind == "ack":
            acked.add(int(value))
            if len(acked) >= 20_000:  # the kill point was never reached: stop it from outside
                proc.send_signal(signal.SIGKILL)
        elif kind == "kill":
            killed = True
        elif kind == "checkpoint_returned":
            returned = True
        else:
            proc.kill()
            pytest.fail(f"child reported {line!r}")
    code = proc.wait(30)
    err = proc.stderr.read() if proc.stderr else ""
    # A kill may land in the replay of the previous life's records, before "ready": that is a flush too.
    assert ready or killed, f"run {run}: the child did not start (store or spool unusable): {err}"
    assert code == -signal.SIGKILL, (code, err)
    return acked, killed, killed and not returned


def recover(data: Path) -> Counter[int]:
    store = DuckDBStore(data / "events.duckdb", memory_limit="256MiB", threads=1)
    spool = Spool(data / "spool.sqlite", min_free_bytes=0, min_free_ratio=0.0)
    writer = StoreWriter(spool, store)

    async def main() -> bool:
        await writer.start()
        return await writer.stop(30.0)

    try:
        assert asyncio.run(main()) is True
        return Counter(row[0].int for row in store.fetch("SELECT id FROM events", {}))
    finally:
        spool.close()
        store.close()


def kill_during_flush(tmp_path: Path, per_point: int) -> None:
    rng = random.Random(int(os.environ.get("R02_SEED", time.time_ns() % 2**32)))
    summary = []
    for point in POINTS:
        data = tmp_path / point
        data.mkdir()
        acked: set[int] = set()
        reached = mid_checkpoint = 0
        began = time.monotonic()
        for run in range(1, per_point + 1):
            nth = rng.randint(1, 3) if point == "during_checkpoint" else rng.randint(2, 8)
            got, killed, mid = run_child(data, run, point, nth)
            acked |= got
            reached += killed
            mid_checkpoint += mid
        ids = recover(data)
        lost = acked - set(ids)
        twice = [i for i, c in ids.items() if c > 1]
        assert not lost, f"{point}: {len(lost)} acknowledged ids lost"
        assert not twice, f"{point}: {len(twice)} ids stored twice"
        # Besides the acked ids only ids of these runs (committed, then killed before their ack was read).
        assert all(1 <= i >> 32 <= per_point for i in ids), f"{point}: an id that was never sent"
        assert reached == per_point, f"{point}: the kill point was reached in {reached}/{per_point} runs"
        mid = f" ({mid_checkpoint} before CHECKPOINT returned)" if point == "during_checkpoint" else ""
        summary.append(
            f"{point}: {per_point} kills{mid}, {len(acked)} acked, {len(ids)} stored once, lost 0, "
            f"duplicates 0 ({time.monotonic() - began:.0f} s)"
        )
    print("\nR02: " + "; ".join(summary))


def test_r02_kill_during_flush_short(tmp_path: Path) -> None:
    kill_during_flush(tmp_path, 3)


@pytest.mark.reliability
def test_r02_kill_during_flush(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    long_form(request, "R02")
    kill_during_flush(tmp_path, 50)
