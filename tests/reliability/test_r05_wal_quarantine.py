"""R05 duckdb-wal-quarantine: a child process ingests through the real spool → StoreWriter → DuckDB
path and is SIGKILLed after a random number of acks, leaving rows in DuckDB's WAL past the last
checkpoint. The WAL is then damaged at a random offset (truncated, 8 bytes flipped, or a 512-byte
block zeroed) and the store is opened as a restarting server would: a WAL DuckDB cannot replay is set
aside (`events.duckdb.wal.quarantined-*`) and the file opens as of its last checkpoint; the writer
then replays the gap from the spool. Every case must open, lose no acked id and store none twice.

Short form: 6 cases. Long form (-m reliability): 50 cases, as reliability.md §7.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.reliability.child_support import recover, run_child
from tests.reliability.crash_support import long_form

MODES = ("truncate", "flip", "zero_block")


def damage(wal: Path, mode: str, rng: random.Random) -> int:
    """Damage the WAL in place; returns the offset."""
    data = bytearray(wal.read_bytes())
    offset = rng.randrange(len(data))
    if mode == "truncate":
        data = data[:offset]
    elif mode == "flip":
        for k in range(offset, min(offset + 8, len(data))):
            data[k] ^= 0xFF
    else:
        data[offset : offset + 512] = bytes(len(data[offset : offset + 512]))
    wal.write_bytes(bytes(data))
    return offset


def wal_quarantine(tmp_path: Path, cases: int) -> None:
    seed = int(os.environ.get("R05_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    quarantined = replayed_partially = 0
    acked_total = 0
    for case in range(cases):
        data = tmp_path / f"case{case}"
        data.mkdir()
        mode = MODES[case % len(MODES)]
        wal = data / "events.duckdb.wal"
        acked: set[int] = set()
        for life in range(1, 6):
            got, _, _ = run_child(data, life, "none", 0, kill_after=rng.randint(400, 2000), checkpoint_s=0.4)
            acked |= got
            # A kill right after a checkpoint leaves no WAL: one more life then.
            if wal.exists() and wal.stat().st_size > 0:
                break
        assert wal.exists() and wal.stat().st_size > 0, f"case {case}: no WAL left by 5 kills"
        offset = damage(wal, mode, rng)
        ids = recover(data)  # must open: a failure here is the crash loop R05 forbids
        context = f"seed={seed} case {case} ({mode} at {offset})"
        assert acked <= set(ids), f"{context}: {len(acked - set(ids))} acked ids lost"
        assert max(ids.values()) == 1, f"{context}: ids stored twice"
        aside = list(data.glob("events.duckdb.wal.quarantined-*"))
        quarantined += bool(aside)
        replayed_partially += not aside
        acked_total += len(acked)
    print(
        f"\nR05 (seed={seed}): {cases} damaged WALs, opened {cases}/{cases}; {quarantined} set aside as "
        f"unreplayable, {replayed_partially} replayed up to the damage by DuckDB; {acked_total} acked "
        f"ids, lost 0, duplicates 0"
    )
    # The quarantine path ran (a flipped or zeroed entry fails its checksum; a truncated tail usually
    # just ends the replay early).
    assert quarantined > 0


def test_r05_wal_quarantine_short(tmp_path: Path) -> None:
    wal_quarantine(tmp_path, 6)


@pytest.mark.reliability
def test_r05_wal_quarantine(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    long_form(request, "R05")
    wal_quarantine(tmp_path, 50)
