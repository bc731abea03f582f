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

import os
import random
import time
from pathlib import Path

import pytest

from tests.reliability.child_support import recover, run_child
from tests.reliability.crash_support import long_form

POINTS = ("insert_before_commit", "after_commit", "during_checkpoint")


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
