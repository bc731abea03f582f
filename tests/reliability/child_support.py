"""A child process running the real spool → StoreWriter → DuckDB hand-off under 8 concurrent clients,
with kill points inside a flush (R02) and an outside SIGKILL after N acks (R05); and the recovery that
the next process start performs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from openpanel_lite.ingest.spool import Spool
from openpanel_lite.ingest.writer import StoreWriter
from openpanel_lite.storage.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
CHILD = r"""
import asyncio, os, random, signal, sys, threading, uuid
from datetime import datetime
from pathlib import Path
from openpanel_lite.ingest.spool import Spool, SpoolRecord
from openpanel_lite.ingest.writer import StoreWriter
from openpanel_lite.storage.duckdb import DuckDBStore
from openpanel_lite.storage.rows import EventRow

data, run, point = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
nth, seed, checkpoint_s = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
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
                         checkpoint_interval_s=checkpoint_s, fault_hook=hook)
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


def run_child(
    data: Path,
    run: int,
    point: str,
    nth: int,
    *,
    kill_after: int = 20_000,
    checkpoint_s: float = 0.05,
) -> tuple[set[int], bool, bool]:
    """One child life; (acked ids, the kill point was reached, a checkpoint kill landed mid-CHECKPOINT).

    point "none": no kill point; the child is SIGKILLed from outside after `kill_after` acks.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(run), point, str(nth), str(run), str(checkpoint_s)],
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
            if len(acked) >= kill_after:  # no kill point (or never reached): stop it from outside
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
