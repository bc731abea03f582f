"""The durable spool: group commit, dedup windows, caps, replay reads, pruning, reopening."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import apsw
import pytest

from openpanel_lite.ingest.spool import (
    Spool,
    SpoolClosed,
    SpoolError,
    SpoolFull,
    SpoolRecord,
    SpoolUnavailable,
)
from openpanel_lite.storage.rows import BotEventRow, EventRow, GroupRow, ProfileRow, SessionRow

T0 = datetime(2024, 5, 1, 12, 0, 0, 250000)


def record(n: int, *, events: int = 1) -> SpoolRecord:
    return SpoolRecord(
        events=tuple(
            EventRow(id=uuid.UUID(int=n * 1000 + i), name=f"e{n}", project_id="p1", created_at=T0)
            for i in range(events)
        )
    )


class FakeClock:
    """A settable millisecond clock (the spool takes the clock as a parameter)."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def open_spool(path: Path, **kw: object) -> Spool:
    # Tests must not depend on the free space of the machine they run on.
    kw.setdefault("min_free_bytes", 0)
    kw.setdefault("min_free_ratio", 0.0)
    return Spool(path, **kw)  # type: ignore[arg-type]


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool.sqlite"


@pytest.fixture
def spool(spool_path: Path) -> Iterator[Spool]:
    s = open_spool(spool_path)
    yield s
    s.close()


def names(s: Spool, after: int = 0) -> list[tuple[int, str]]:
    return [(seq, rec.events[0].name) for seq, rec in s.pending_after(after)]


def test_group_commit_gives_distinct_increasing_seqs_in_delivery_order(spool: Spool) -> None:
    delivered: list[list[int]] = []
    spool.set_listener(lambda items: delivered.append([seq for seq, _ in items]))

    async def main() -> list[int | None]:
        return await asyncio.gather(*(spool.append(record(n)) for n in range(200)))

    seqs = asyncio.run(main())
    assert seqs == list(range(1, 201))
    # Every committed record reached the listener once, in seq order, in a few groups (not 200 commits).
    assert [seq for group in delivered for seq in group] == list(range(1, 201))
    assert len(delivered) <= 5
    assert names(spool)[:3] == [(1, "e0"), (2, "e1"), (3, "e2")]
    assert names(spool)[-1] == (200, "e199")
    assert spool.pending_count() == 200
    assert spool.delivered_upto == 200


def test_record_round_trips_every_row_type(spool: Spool) -> None:
    rec = SpoolRecord(
        events=(
            EventRow(
                id=uuid.UUID(int=7),
                name="screen_view",
                project_id="p1",
                created_at=T0,
                properties={"ключ": "значение", "emoji": "🎉"},
                groups=("g1", "g2"),
                latitude=None,
                longitude=13.4,
                imported_at=datetime(2024, 1, 2, tzinfo=UTC),
            ),
        ),
        profiles=(ProfileRow(id="u1", project_id="p1", created_at=T0, last_seen_at=T0, email="a@b.c"),),
        sessions=(SessionRow(id="s1", project_id="p1", created_at=T0, ended_at=T0, sign=-1, version=3),),
        groups=(GroupRow(id="g1", project_id="p1", created_at=T0, properties={"plan": "pro"}),),
        bots=(
            BotEventRow(
                id=uuid.UUID(int=8), project_id="p1", name="Googlebot", type="crawler", created_at=T0
            ),
        ),
    )

    async def main() -> int | None:
        return await spool.append(rec)

    assert asyncio.run(main()) == 1
    assert list(spool.pending_after(0)) == [(1, rec)]
    assert rec.row_count() == 5


def test_dedup_key_within_window_is_a_duplicate(spool_path: Path) -> None:
    clock = FakeClock()
    s = open_spool(spool_path, clock=clock, dedup_window_ms=1000)

    async def main() -> None:
        assert await s.append(record(1), "evt-1") == 1
        assert await s.append(record(2), "evt-1") is None
        assert await s.append(record(3), "evt-2") == 2
        assert await s.append(record(4)) == 3  # no key: never a duplicate
        assert await s.append(record(5)) == 4
        clock.now_ms += 999
        assert await s.append(record(6), "evt-1") is None
        clock.now_ms += 1
        # The window has passed: the same id is new again (even before prune_dedup ran).
        assert await s.append(record(7), "evt-1") == 5
        # A per-call window, e.g. the 100 ms content-hash fallback.
        assert await s.append(record(8), "hash-a", dedup_window_ms=100) == 6
        clock.now_ms += 99
        assert await s.append(record(9), "hash-a", dedup_window_ms=100) is None
        clock.now_ms += 1
        assert await s.append(record(10), "hash-a", dedup_window_ms=100) == 7

    asyncio.run(main())
    assert [n for _, n in names(s)] == ["e1", "e3", "e4", "e5", "e7", "e8", "e10"]
    s.close()


def test_same_key_twice_in_one_group_commits_once(spool: Spool) -> None:
    async def main() -> list[int | None]:
        return await asyncio.gather(*(spool.append(record(n), "same") for n in range(5)))

    assert asyncio.run(main()) == [1, None, None, None, None]
    assert names(spool) == [(1, "e0")]


def test_dedup_keys_outlive_pruned_rows_and_expire_by_age(spool_path: Path) -> None:
    clock = FakeClock()
    s = open_spool(spool_path, clock=clock, dedup_window_ms=10_000)

    async def append(n: int, key: str) -> int | None:
        return await s.append(record(n), key)

    assert asyncio.run(append(1, "a")) == 1
    clock.now_ms += 5_000
    assert asyncio.run(append(2, "b")) == 2
    assert s.prune(2) == 2
    assert s.pending_count() == 0
    assert asyncio.run(append(3, "a")) is None  # rows gone, key remembered
    clock.now_ms += 5_000
    assert s.prune_dedup() == 1  # "a" expired, "b" has 5 s left
    assert asyncio.run(append(4, "b")) is None
    assert asyncio.run(append(5, "a")) == 3
    s.close()


def test_reopen_keeps_records_and_never_reuses_a_seq(spool_path: Path) -> None:
    s = open_spool(spool_path)

    async def fill(sp: Spool, ns: range) -> list[int | None]:
        return [await sp.append(record(n)) for n in ns]

    assert asyncio.run(fill(s, range(3))) == [1, 2, 3]
    s.close()

    s = open_spool(spool_path)
    assert names(s) == [(1, "e0"), (2, "e1"), (3, "e2")]
    assert s.pending_count() == 3
    assert s.delivered_upto == 3
    assert s.prune(3) == 3
    s.close()

    # Even with every row pruned, the next seq continues above the old ones: the store's watermark
    # already covers 1..3, so a reused 3 would never be replayed.
    s = open_spool(spool_path)
    assert s.last_seq() == 3
    assert asyncio.run(fill(s, range(3, 4))) == [4]
    s.close()


def test_ensure_seq_above_moves_only_forward(spool: Spool) -> None:
    assert spool.ensure_seq_above(41) is True
    assert spool.ensure_seq_above(10) is False
    assert spool.ensure_seq_above(41) is False

    async def main() -> int | None:
        return await spool.append(record(1))

    assert asyncio.run(main()) == 42


def test_pending_after_pages_and_bounds(spool: Spool) -> None:
    async def main() -> None:
        for n in range(7):
            await spool.append(record(n))

    asyncio.run(main())
    assert [seq for seq, _ in spool.pending_after(2, 6, page=2)] == [3, 4, 5, 6]
    assert [seq for seq, _ in spool.pending_after(0, page=3)] == [1, 2, 3, 4, 5, 6, 7]
    assert list(spool.pending_after(7)) == []


def test_prune_removes_exactly_up_to_the_mark(spool: Spool) -> None:
    async def main() -> None:
        for n in range(7):
            await spool.append(record(n))

    asyncio.run(main())
    assert spool.prune(5, chunk=2) == 5
    assert [seq for seq, _ in spool.pending_after(0)] == [6, 7]
    assert spool.pending_count() == 2
    assert spool.prune(5) == 0
    assert spool.prune(100) == 2
    assert spool.pending_count() == 0


def test_file_is_private(spool: Spool, spool_path: Path) -> None:
    assert stat.S_IMODE(os.stat(spool_path).st_mode) == 0o600


def test_cap_on_rows(spool_path: Path) -> None:
    s = open_spool(spool_path, max_rows=3)

    async def main() -> None:
        for n in range(3):
            await s.append(record(n))
        with pytest.raises(SpoolFull) as exc:
            await s.append(record(9))
        assert (exc.value.reason, exc.value.retry_after_s) == ("rows", 5)
        s.prune(1)
        assert await s.append(record(10)) == 4

    asyncio.run(main())
    s.close()


def test_cap_on_bytes(spool_path: Path) -> None:
    s = open_spool(spool_path, max_bytes=1)

    async def main() -> None:
        assert await s.append(record(1)) == 1
        with pytest.raises(SpoolFull) as exc:
            await s.append(record(2))
        assert exc.value.reason == "bytes"

    asyncio.run(main())
    s.close()


@pytest.mark.parametrize("floor", [{"min_free_bytes": 1 << 62}, {"min_free_ratio": 1.0}])
def test_free_disk_floor(spool_path: Path, floor: dict[str, float]) -> None:
    s = open_spool(spool_path, **floor)

    async def main() -> None:
        with pytest.raises(SpoolFull) as exc:
            await s.append(record(1))
        assert (exc.value.reason, exc.value.retry_after_s) == ("disk", 30)

    asyncio.run(main())
    assert s.pending_count() == 0
    s.close()


def test_cap_on_group_commit_queue_while_the_file_is_locked(spool_path: Path) -> None:
    s = open_spool(spool_path, max_queue=3)
    # Another connection holding the write lock stalls the commit thread, so the queue fills.
    other = apsw.Connection(str(spool_path))

    async def main() -> list[int | None]:
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.ensure_future(s.append(record(0)))
        await asyncio.sleep(0)  # let it enqueue
        while s.queued():  # the commit thread has taken record 0 and now waits for the lock
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(s.append(record(n))) for n in (1, 2, 3)]
        await asyncio.sleep(0)
        assert s.queued() == 3
        with pytest.raises(SpoolFull) as exc:
            await s.append(record(4))
        assert (exc.value.reason, exc.value.retry_after_s) == ("queue", 1)
        other.execute("ROLLBACK")
        return await asyncio.gather(first, *queued)

    assert sorted(x for x in asyncio.run(main()) if x is not None) == [1, 2, 3, 4]
    other.close()
    s.close()


def test_closed_spool_refuses_with_retry_after(spool: Spool) -> None:
    spool.stop_accepting()

    async def main() -> None:
        with pytest.raises(SpoolClosed) as exc:
            await spool.append(record(1))
        assert isinstance(exc.value, SpoolUnavailable)
        assert exc.value.retry_after_s == 5

    asyncio.run(main())


def test_close_commits_what_is_queued(spool_path: Path) -> None:
    s = open_spool(spool_path, commit_window_ms=50)

    async def main() -> list[int | None]:
        tasks = [asyncio.ensure_future(s.append(record(n))) for n in range(4)]
        await asyncio.sleep(0)
        s.close()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [1, 2, 3, 4]
    s = open_spool(spool_path)
    assert s.pending_count() == 4
    s.close()


def test_normal_mode_and_bad_mode(spool_path: Path) -> None:
    s = open_spool(spool_path, synchronous="NORMAL")
    assert s.file.synchronous() == 1  # NORMAL
    s.close()
    with pytest.raises(ValueError):
        open_spool(spool_path, synchronous="OFF")


def test_newer_format_is_refused(spool_path: Path) -> None:
    open_spool(spool_path).close()
    conn = apsw.Connection(str(spool_path))
    conn.pragma("user_version", 99)
    conn.close()
    with pytest.raises(SpoolError, match="format 99"):
        open_spool(spool_path)


def test_unreadable_record_is_set_aside_not_replayed(spool: Spool, spool_path: Path) -> None:
    async def main() -> None:
        for n in range(3):
            await spool.append(record(n))

    asyncio.run(main())
    conn = apsw.Connection(str(spool_path))
    conn.execute("UPDATE spool SET body = x'c1ff' WHERE seq = 2")
    conn.close()
    assert names(spool) == [(1, "e0"), (3, "e2")]
    assert spool.dead_letter_count() == 1
    assert names(spool) == [(1, "e0"), (3, "e2")]  # seen again: still one dead letter
    assert spool.dead_letter_count() == 1
