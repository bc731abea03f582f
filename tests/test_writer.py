"""StoreWriter against a real DuckDB store: batches, replay after crashes, retries, checkpoint and
prune, session netting, shutdown; plus a SIGKILL loop in a child process and a state machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from openpanel_lite.ingest.spool import Spool, SpoolClosed, SpoolRecord
from openpanel_lite.ingest.writer import FAULT_STEPS, StoreWriteFailed, StoreWriter, build_batch, net_sessions
from openpanel_lite.metrics import Metrics
from openpanel_lite.storage import StoreError
from openpanel_lite.storage.duckdb import DuckDBStore
from openpanel_lite.storage.rows import EventRow, SessionRow, WriteBatch

T0 = datetime(2024, 5, 1, 12, 0, 0)
REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")
# The state machine opens and closes a store and a spool per example: on tmpfs its fsyncs cost nothing,
# which is what lets R15's 10,000 sequences fit in a run (the durability proofs are the kill tests').
MACHINE_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def event(n: int) -> EventRow:
    return EventRow(id=uuid.UUID(int=n), name="screen_view", project_id="p1", created_at=T0)


def record(*ns: int) -> SpoolRecord:
    return SpoolRecord(events=tuple(event(n) for n in ns))


def session(sid: str, version: int, sign: int, *, events: int = 1) -> SessionRow:
    return SessionRow(
        id=sid, project_id="p1", created_at=T0, ended_at=T0, version=version, sign=sign, event_count=events
    )


class SnapshotStore(DuckDBStore):
    """DuckDBStore that copies its file after each checkpoint, so a test can later throw away
    everything since (what quarantining an unreplayable WAL does, reliability §2.3)."""

    snapshot_mark: int | None = None

    def checkpoint(self) -> None:
        super().checkpoint()
        shutil.copyfile(self.path, self.path + ".ckpt")
        self.snapshot_mark = self.watermark()


def open_store(data: Path, cls: type[DuckDBStore] = SnapshotStore) -> DuckDBStore:
    store = cls(data / "events.duckdb", memory_limit="256MiB", threads=1)
    store.migrate()
    return store


def lose_wal(data: Path) -> None:
    """After a crash: back to the last checkpoint's file, WAL gone."""
    path = data / "events.duckdb"
    for p in (path, Path(f"{path}.wal")):
        p.unlink(missing_ok=True)
    if Path(f"{path}.ckpt").exists():
        shutil.copyfile(f"{path}.ckpt", path)


class FlakyStore:
    """A real store whose next `failures` appends raise, before or after the rows are committed."""

    def __init__(self, inner: DuckDBStore, failures: int, *, after_commit: bool = False) -> None:
        self.inner = inner
        self.failures = failures
        self.after_commit = after_commit
        self.calls = 0

    def append(self, batch: WriteBatch) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            if self.after_commit:
                self.inner.append(batch)
            raise StoreError("injected failure")
        self.inner.append(batch)

    def watermark(self) -> int:
        return self.inner.watermark()

    def checkpoint(self) -> None:
        self.inner.checkpoint()


class Crash(BaseException):
    """A simulated process death raised by a fault hook; the writer must then be thrown away."""


def crash_at(step: str, nth: int = 1) -> Callable[[str], None]:
    seen: Counter[str] = Counter()

    def hook(name: str) -> None:
        seen[name] += 1
        if name == step and seen[name] == nth:
            raise Crash(step)

    return hook


def open_spool(data: Path, **kw: object) -> Spool:
    kw.setdefault("min_free_bytes", 0)
    kw.setdefault("min_free_ratio", 0.0)
    return Spool(data / "spool.sqlite", **kw)  # type: ignore[arg-type]


def stored_ids(store: DuckDBStore) -> Counter[int]:
    return Counter(row[0].int for row in store.fetch("SELECT id FROM events", {}))


def spooled_seqs(spool: Spool) -> list[int]:
    return [seq for seq, _ in spool.pending_after(0)]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path


async def accept(spool: Spool, *ns: int) -> list[int | None]:
    return [await spool.append(record(n)) for n in ns]


# ----------------------------------------------------------------------------------------------
# pure parts


def test_net_sessions_drops_cancelling_pairs_only() -> None:
    a1, a1_off, a2 = session("a", 1, 1), session("a", 1, -1), session("a", 2, 1)
    b1_off = session("b", 1, -1)
    assert net_sessions([a1, a1_off, a2]) == [a2]
    assert net_sessions([a1_off, a1, a2]) == [a2]
    # A cancel row for a version written in an earlier batch stays.
    assert net_sessions([b1_off, a2]) == [b1_off, a2]
    # Two +1 and one -1 of the same version: one +1 survives (the first).
    first, second = session("c", 1, 1, events=1), session("c", 1, 1, events=2)
    assert net_sessions([first, session("c", 1, -1), second]) == [first]
    # Same id and version in another project is another session.
    other = SessionRow(id="a", project_id="p2", created_at=T0, ended_at=T0, version=1, sign=-1)
    assert net_sessions([a1, other]) == [a1, other]


def test_build_batch_concatenates_in_seq_order_with_last_seq_as_watermark() -> None:
    batch = build_batch([(4, record(1, 2)), (5, SpoolRecord(sessions=(session("a", 1, 1),))), (9, record(3))])
    assert [e.id.int for e in batch.events] == [1, 2, 3]
    assert batch.sessions == [session("a", 1, 1)]
    assert batch.spool_watermark == 9
    assert build_batch([]).spool_watermark is None


# ----------------------------------------------------------------------------------------------
# the live path


def test_flush_writes_each_record_once_with_the_watermark(data: Path) -> None:
    store, spool, metrics = open_store(data), open_spool(data), Metrics()
    writer = StoreWriter(spool, store, flush_max_events=10, metrics=metrics)

    async def main() -> None:
        await writer.start(background=False)
        assert writer.live
        seqs = await accept(spool, *range(1, 26))
        assert seqs == list(range(1, 26))
        assert writer.queue_size() == 25
        await writer.flush()

    asyncio.run(main())
    assert stored_ids(store) == Counter(range(1, 26))
    assert store.watermark() == 25
    assert writer.flushed_upto == 25
    assert writer.queue_size() == 0
    # 25 events at 10 per batch: 10 + 10 + 5.
    assert metrics.store_writes_total._value.get() == 3
    assert spooled_seqs(spool) == list(range(1, 26))  # no checkpoint yet: nothing pruned
    spool.close()
    store.close()


def test_background_loop_flushes_on_interval_and_stop_drains(data: Path) -> None:
    store, spool = open_store(data), open_spool(data)
    writer = StoreWriter(spool, store, flush_interval_ms=20, checkpoint_interval_s=3600)

    async def main() -> bool:
        await writer.start()
        await accept(spool, 1, 2, 3)
        for _ in range(200):
            if store.watermark() == 3:
                break
            await asyncio.sleep(0.01)
        assert stored_ids(store) == Counter([1, 2, 3])
        await accept(spool, 4, 5)
        ok = await writer.stop(5.0)
        with pytest.raises(SpoolClosed):
            await spool.append(record(6))
        return ok

    assert asyncio.run(main()) is True
    assert stored_ids(store) == Counter([1, 2, 3, 4, 5])
    # stop() checkpointed and pruned everything the checkpoint covers.
    assert writer.checkpointed_upto == 5
    assert spool.pending_count() == 0
    spool.close()
    store.close()


def test_sessions_net_inside_a_batch_but_not_across_batches(data: Path) -> None:
    for flush_max, expected in ((100, [("s", 2, 1)]), (1, [("s", 1, 1), ("s", 1, -1), ("s", 2, 1)])):
        d = data / f"max{flush_max}"
        d.mkdir()
        store, spool = open_store(d), open_spool(d)
        writer = StoreWriter(spool, store, flush_max_events=flush_max)

        async def main(spool: Spool = spool, writer: StoreWriter = writer) -> None:
            await writer.start(background=False)
            await spool.append(SpoolRecord(sessions=(session("s", 1, 1),)))
            await spool.append(SpoolRecord(sessions=(session("s", 1, -1), session("s", 2, 1))))
            await writer.flush()

        asyncio.run(main())
        rows = store.fetch("SELECT id, version, sign FROM sessions ORDER BY version, sign DESC", {})
        assert rows == expected
        assert store.watermark() == 2
        spool.close()
        store.close()


def test_idle_writer_does_not_spin_after_catching_up(data: Path) -> None:
    # Replay that ends exactly on a full batch once left the loop thinking more was waiting.
    store, spool = open_store(data), open_spool(data)

    async def main() -> float:
        await accept(spool, 1, 2, 3, 4, 5)
        writer = StoreWriter(spool, store, flush_max_events=5)
        await writer.start()
        assert store.watermark() == 5
        began = time.process_time()
        await asyncio.sleep(0.3)
        used = time.process_time() - began
        assert await writer.stop(5.0)
        return used

    assert asyncio.run(main()) < 0.1
    spool.close()
    store.close()


def test_fault_hook_sees_every_step_in_order(data: Path) -> None:
    steps: list[str] = []
    store, spool = open_store(data), open_spool(data)
    writer = StoreWriter(spool, store, fault_hook=steps.append)

    async def main() -> None:
        await writer.start(background=False)
        await accept(spool, 1)
        await writer.flush()
        assert await writer.checkpoint() is True

    asyncio.run(main())
    assert tuple(steps) == FAULT_STEPS
    spool.close()
    store.close()


# ----------------------------------------------------------------------------------------------
# crashes and replay


def test_replay_after_crash_writes_unflushed_records_exactly_once(data: Path) -> None:
    store, spool = open_store(data), open_spool(data)
    writer = StoreWriter(spool, store, flush_max_events=4, fault_hook=crash_at("before_append", 2))

    async def first_life() -> None:
        await writer.start(background=False)
        await accept(spool, *range(1, 11))
        # Only the first batch reaches the store before the "crash".
        with pytest.raises(Crash):
            await writer.flush()

    asyncio.run(first_life())
    assert store.watermark() == 4
    spool.close()  # crash: no stop(), no flush; memory is gone
    store.close()

    store, spool = open_store(data), open_spool(data)
    writer = StoreWriter(spool, store, flush_max_events=4)

    async def second_life() -> None:
        await writer.start(background=False)
        assert writer.live
        await writer.flush()

    asyncio.run(second_life())
    assert stored_ids(store) == Counter(range(1, 11))
    assert store.watermark() == 10
    spool.close()
    store.close()


def test_wal_loss_replays_from_the_checkpointed_watermark(data: Path) -> None:
    store, spool = open_store(data), open_spool(data)
    writer = StoreWriter(spool, store)

    async def first_life() -> None:
        await writer.start(background=False)
        await accept(spool, *range(1, 11))
        await writer.flush()
        assert await writer.checkpoint()
        await accept(spool, *range(11, 16))
        await writer.flush()

    asyncio.run(first_life())
    # Prune stopped at the checkpoint: rows 11-15 live only in the store's WAL and in the spool.
    assert writer.checkpointed_upto == 10
    assert spooled_seqs(spool) == [11, 12, 13, 14, 15]
    spool.close()
    store.close()
    lose_wal(data)

    store, spool = open_store(data), open_spool(data)
    assert store.watermark() == 10
    assert stored_ids(store) == Counter(range(1, 11))
    writer = StoreWriter(spool, store)

    async def second_life() -> bool:
        await writer.start(background=False)
        return await writer.stop(5.0)

    assert asyncio.run(second_life()) is True
    assert stored_ids(store) == Counter(range(1, 16))
    spool.close()
    store.close()


def test_spool_behind_the_store_does_not_hide_new_records(data: Path) -> None:
    store = open_store(data)
    store.append(WriteBatch(events=[event(100)], spool_watermark=50))
    spool = open_spool(data)  # a fresh spool: its seqs would start at 1, below the watermark
    writer = StoreWriter(spool, store)

    async def main() -> list[int | None]:
        await writer.start(background=False)
        seqs = await accept(spool, 1, 2)
        await writer.flush()
        return seqs

    assert asyncio.run(main()) == [51, 52]
    assert stored_ids(store) == Counter([100, 1, 2])
    assert store.watermark() == 52
    spool.close()
    store.close()


# ----------------------------------------------------------------------------------------------
# store failures


@pytest.mark.parametrize("after_commit", [False, True], ids=["fails-before-commit", "fails-after-commit"])
def test_failing_store_loses_nothing_and_duplicates_nothing(data: Path, after_commit: bool) -> None:
    inner, spool, metrics = open_store(data), open_spool(data), Metrics()
    store = FlakyStore(inner, failures=3, after_commit=after_commit)
    writer = StoreWriter(spool, store, flush_max_events=5, metrics=metrics)

    async def main() -> int:
        await writer.start(background=False)
        await accept(spool, *range(1, 13))
        failures = 0
        while writer.flushed_upto < 12:
            try:
                await writer.flush()
            except StoreWriteFailed:
                failures += 1
        return failures

    assert asyncio.run(main()) == 3
    assert stored_ids(inner) == Counter(range(1, 13))
    assert inner.watermark() == 12
    assert metrics.store_write_errors_total._value.get() == 3
    # After a failure past the commit, the writer learns from the watermark that the batch is in
    # and does not send it again.
    assert store.calls == (3 if after_commit else 6)
    spool.close()
    inner.close()


def test_background_loop_retries_with_backoff(data: Path) -> None:
    inner, spool, metrics = open_store(data), open_spool(data), Metrics()
    store = FlakyStore(inner, failures=4)
    writer = StoreWriter(
        spool, store, flush_interval_ms=5, retry_min_s=0.01, retry_max_s=0.04, metrics=metrics
    )

    async def main() -> bool:
        await writer.start()
        await accept(spool, *range(1, 8))
        return await writer.stop(10.0)

    assert asyncio.run(main()) is True
    assert stored_ids(inner) == Counter(range(1, 8))
    assert metrics.store_write_errors_total._value.get() == 4
    assert spool.pending_count() == 0
    spool.close()
    inner.close()


def test_spill_to_catch_up_bounds_memory_while_the_store_is_down(data: Path) -> None:
    inner, spool = open_store(data), open_spool(data)
    store = FlakyStore(inner, failures=1_000_000)
    writer = StoreWriter(spool, store, flush_max_events=5, max_memory_events=8)

    async def main() -> None:
        await writer.start(background=False)
        await accept(spool, *range(1, 31))
        # 8 held in memory, the other 22 only in the spool.
        assert not writer.live
        assert writer.queue_size() == 30
        with pytest.raises(StoreWriteFailed):
            await writer.flush()
        store.failures = 0
        await writer.flush()
        assert writer.live
        await accept(spool, 31)
        await writer.flush()

    asyncio.run(main())
    assert stored_ids(inner) == Counter(range(1, 32))
    spool.close()
    inner.close()


def test_stop_with_a_dead_store_leaves_everything_in_the_spool(data: Path) -> None:
    inner, spool = open_store(data), open_spool(data)
    writer = StoreWriter(spool, FlakyStore(inner, failures=1_000_000), retry_min_s=0.01, retry_max_s=0.02)

    async def first_life() -> bool:
        await writer.start()
        await accept(spool, 1, 2, 3)
        return await writer.stop(0.3)

    assert asyncio.run(first_life()) is False
    assert stored_ids(inner) == Counter()
    assert spooled_seqs(spool) == [1, 2, 3]
    spool.close()

    spool = open_spool(data)
    writer = StoreWriter(spool, inner)

    async def second_life() -> bool:
        await writer.start()
        return await writer.stop(5.0)

    assert asyncio.run(second_life()) is True
    assert stored_ids(inner) == Counter([1, 2, 3])
    spool.close()
    inner.close()


# ----------------------------------------------------------------------------------------------
# a real process, SIGKILLed mid-stream

CHILD = r"""
import asyncio, os, signal, sys, uuid
from datetime import datetime
from pathlib import Path
from openpanel_lite.ingest.spool import Spool, SpoolRecord
from openpanel_lite.ingest.writer import StoreWriter
from openpanel_lite.storage.duckdb import DuckDBStore
from openpanel_lite.storage.rows import EventRow

data, run, kill_step, kill_nth = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
seen = {}

def hook(step):
    seen[step] = seen.get(step, 0) + 1
    if step == kill_step and seen[step] == kill_nth:
        os.kill(os.getpid(), signal.SIGKILL)

async def main():
    store = DuckDBStore(data / "events.duckdb", memory_limit="256MiB", threads=1)
    store.migrate()
    spool = Spool(data / "spool.sqlite", min_free_bytes=0, min_free_ratio=0.0)
    writer = StoreWriter(spool, store, flush_interval_ms=5, flush_max_events=40,
                         checkpoint_interval_s=0.03, fault_hook=hook)
    await writer.start()
    print("ready", flush=True)
    counter = iter(range(1, 10**9))

    async def client():
        for i in counter:
            n = (run << 32) | i
            rec = SpoolRecord(events=(EventRow(id=uuid.UUID(int=n), name="e", project_id="p",
                                               created_at=datetime(2024, 1, 1)),))
            if await spool.append(rec, f"id-{n}") is None:
                print(f"lost {n}", flush=True)
            print(f"ack {n}", flush=True)
            if i % 5 == 0 and await spool.append(rec, f"id-{n}") is not None:  # an SDK retry
                print(f"dup {n}", flush=True)

    await asyncio.gather(*(client() for _ in range(8)))

asyncio.run(main())
"""


def run_child(
    data: Path, run: int, kill_step: str, kill_nth: int, kill_after_acks: int
) -> tuple[set[int], float]:
    """Start the child, SIGKILL it (or let a hook kill it); the acked ids and the time to ready."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(run), kill_step, str(kill_nth)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    acked: set[int] = set()
    ready_s = 0.0
    for line in proc.stdout:
        kind, _, value = line.strip().partition(" ")
        if kind == "ready":
            ready_s = time.monotonic() - began
        elif kind == "ack":
            acked.add(int(value))
            # The cap stops a run whose hook never fired.
            if len(acked) >= min(kill_after_acks, 5000):
                proc.send_signal(signal.SIGKILL)
        else:
            proc.kill()
            pytest.fail(f"child reported {line!r}")
    assert proc.wait(30) == -signal.SIGKILL
    return acked, ready_s


def kill_loop(data: Path, plan: list[tuple[str, int, int]]) -> dict[str, float]:
    acked: set[int] = set()
    ready: list[float] = []
    for run, (step, nth, after_acks) in enumerate(plan, start=1):
        got, ready_s = run_child(data, run, step, nth, after_acks)
        acked |= got
        ready.append(ready_s)

    store = DuckDBStore(data / "events.duckdb", memory_limit="256MiB", threads=1)
    spool = open_spool(data)
    writer = StoreWriter(spool, store)

    async def recover() -> bool:
        await writer.start()
        return await writer.stop(10.0)

    assert asyncio.run(recover()) is True
    ids = stored_ids(store)
    assert acked, "no run acknowledged anything"
    assert acked <= set(ids), f"lost {len(acked - set(ids))} acknowledged ids"
    assert max(ids.values()) == 1, "duplicates in the store"
    spool.close()
    store.close()
    return {"runs": len(plan), "acked": len(acked), "stored": len(ids), "ready_max_s": max(ready)}


def test_sigkill_loop_loses_no_acknowledged_event(data: Path) -> None:
    # A kill from outside mid-stream, one right after a batch commits, one between checkpoint and prune.
    kill_loop(data, [("none", 0, 300), ("after_append", 3, 10**9), ("after_checkpoint", 2, 10**9)])


@pytest.mark.slow
def test_sigkill_loop_long(data: Path) -> None:
    plan = [(step, 1 + run % 3, 10**9) for run, step in enumerate(FAULT_STEPS * 2)]
    plan += [("none", 0, 50 + 97 * run) for run in range(8)]
    stats = kill_loop(data, plan)
    assert stats["runs"] == 20


# ----------------------------------------------------------------------------------------------
# R15: accept / flush / checkpoint / prune / crash / restart in any order (run by
# tests/reliability/test_r15_spool_state_machine.py)


class SpoolMachine(RuleBasedStateMachine):
    """Invariants: every acknowledged id is in the store or the spool, the store holds no id twice,
    and the spool still holds every acknowledged record above the last checkpoint's watermark."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-machine-", dir=MACHINE_TMP))
        self.loop = asyncio.new_event_loop()
        self.acked: dict[int, int] = {}  # event id -> spool seq
        self.next_id = 1
        self.checkpointed_mark = 0
        self.crash_step: str | None = None
        self._open()

    def _hook(self, step: str) -> None:
        if step == self.crash_step:
            raise Crash(step)

    def _open(self) -> None:
        self.store = open_store(self.dir)
        assert isinstance(self.store, SnapshotStore)
        self.flaky = FlakyStore(self.store, failures=0)
        self.spool = open_spool(self.dir)
        self.writer = StoreWriter(self.spool, self.flaky, flush_max_events=3, fault_hook=self._hook)
        self.crash_step = None
        self.run(self.writer.start(background=False))

    def _close(self) -> None:
        mark = self.store.snapshot_mark
        if mark is not None:
            self.checkpointed_mark = mark
        self.spool.close()
        self.store.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @rule(n=st.integers(1, 4), retry=st.booleans())
    def accept(self, n: int, retry: bool) -> None:
        for _ in range(n):
            seq = self.run(self.spool.append(record(self.next_id), f"id-{self.next_id}"))
            assert seq is not None
            self.acked[self.next_id] = seq
            self.next_id += 1
        if retry:  # an SDK retry of the last event: must be recognised, even across restarts
            last = self.next_id - 1
            assert self.run(self.spool.append(record(last), f"id-{last}")) is None

    @rule()
    def flush(self) -> None:
        self.run(self.writer.flush())

    @rule(after_commit=st.booleans())
    def flush_with_store_failure(self, after_commit: bool) -> None:
        self.flaky.failures, self.flaky.after_commit = 1, after_commit
        with contextlib.suppress(StoreWriteFailed):
            self.run(self.writer.flush())
        self.flaky.failures = 0

    @rule()
    def checkpoint(self) -> None:
        assert self.run(self.writer.checkpoint()) is True
        assert self.store.snapshot_mark is not None
        self.checkpointed_mark = self.store.snapshot_mark

    @rule()
    def prune(self) -> None:
        self.spool.prune(self.writer.checkpointed_upto)

    @rule(step=st.sampled_from(FAULT_STEPS), lose=st.booleans())
    def crash_during_flush(self, step: str, lose: bool) -> None:
        self.crash_step = step
        try:
            self.run(self.writer.flush())
            self.run(self.writer.checkpoint())
        except Crash:
            pass
        self.crash(lose)

    @rule(lose=st.booleans())
    def crash(self, lose: bool) -> None:
        self._close()
        if lose:
            lose_wal(self.dir)
        self._open()

    @rule()
    def restart(self) -> None:
        assert self.run(self.writer.stop(5.0)) is True
        self._close()
        self._open()

    @invariant()
    def acked_is_durable_and_unique(self) -> None:
        if self.store.snapshot_mark is not None:
            self.checkpointed_mark = self.store.snapshot_mark
        stored = stored_ids(self.store)
        assert all(count == 1 for count in stored.values()), "duplicate rows in the store"
        assert set(stored) <= set(self.acked)
        spooled = {rec.events[0].id.int for _, rec in self.spool.pending_after(0)}
        for event_id, seq in self.acked.items():
            assert event_id in stored or event_id in spooled, f"acked {event_id} lost"
            if seq > self.checkpointed_mark:
                assert event_id in spooled, f"{event_id} pruned above the checkpoint"

    def teardown(self) -> None:
        try:
            self.crash_step = None
            assert self.run(self.writer.stop(5.0)) is True
            assert stored_ids(self.store) == Counter(list(self.acked))
        finally:
            self._close()
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)
