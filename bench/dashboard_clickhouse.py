"""The ClickHouse half of bench/dashboard.py (issue 5 criterion 7): the same data set in a ClickHouse
event store, every overview widget timed the same way, and a side-by-side table with DuckDB.

    python bench/dashboard.py --backend both          # DuckDB first, then ClickHouse, side by side
    python bench/dashboard.py --backend clickhouse    # ClickHouse only

1. Load: the cached DuckDB file of bench/dashboard.py is moved into a ClickHouseStore on chdb (the
   ClickHouse engine in-process, `chdb://` URL, data under /tmp/openpanel-bench/) with the product's
   own `openpanel migrate-events` copy: one deduplicated insert per (table, project, UTC day), then the
   per-day row counts verified. Then OPTIMIZE … FINAL merges the parts, as a server's background merges
   would. The load is timed once; later runs reuse the loaded folder (an interrupted load resumes).
2. Timing, through the Reports facade and its QueryCache exactly as on DuckDB: first run after opening
   the store, cold (fresh report cache, median of --repeat), cached, and the whole overview page.

It runs in a child process: chdb allows one engine per process, and its memory must not count in the
DuckDB run's peak RSS. The child writes its results as JSON; the parent prints them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import (  # noqa: E402
    CACHE_DIR,
    PAGE_KEYS,
    PROJECT,
    SEED,
    Result,
    Row,
    _ms,
    fresh_reports,
    overview_query,
    widget_calls,
)

from openpanel_lite.migrate_events import copy_events, verify  # noqa: E402
from openpanel_lite.storage.clickhouse import ClickHouseStore, connect  # noqa: E402
from openpanel_lite.storage.duckdb import DuckDBStore  # noqa: E402

DATABASE = "bench"


def chdb_dir(events: int) -> Path:
    return CACHE_DIR / f"chdb-{events}-{SEED}"


def load(duck_path: Path, folder: Path) -> dict[str, Any]:
    """Move the DuckDB data into the chdb store under `folder` once; the timings of that load."""
    marker = folder / "loaded.json"
    if marker.exists():
        return {**json.loads(marker.read_text()), "reused": True}
    folder.mkdir(parents=True, exist_ok=True)
    url = f"chdb://{folder}"
    store = ClickHouseStore(url, database=DATABASE, node="bench")
    store.migrate()
    source = DuckDBStore(duck_path, memory_limit="1GiB", threads=2)
    print(f"clickhouse: loading {duck_path.name} into {folder}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    copied, skipped, rows = copy_events(source, store, _progress(started))
    copy_s = time.perf_counter() - started
    verify(source, store)
    verify_s = time.perf_counter() - started - copy_s
    client = connect(url, database=DATABASE)
    for table in ("events", "sessions"):
        client.command(f"OPTIMIZE TABLE {table} FINAL")
    client.close()
    optimize_s = time.perf_counter() - started - copy_s - verify_s
    source.close()
    store.close()
    timings = {
        "copy_s": copy_s,
        "verify_s": verify_s,
        "optimize_s": optimize_s,
        "rows": rows,
        "chunks": copied,
        "skipped_chunks": skipped,
    }
    marker.write_text(json.dumps(timings))
    return {**timings, "reused": False}


def _progress(started: float) -> Callable[[int, int, int], None]:
    """A line on stderr at every tenth of the chunks (the product's bar redraws one line per chunk)."""

    def show(done: int, total: int, rows: int) -> None:
        if done == total or done * 10 // total != (done - 1) * 10 // total:
            elapsed = time.perf_counter() - started
            print(f"  {done}/{total} chunks, {rows:,} rows, {elapsed:.0f} s", file=sys.stderr, flush=True)

    return show


def measure(folder: Path, repeat: int) -> dict[str, Any]:
    """first / cold / cached per widget and the whole page, as bench/dashboard.py does on DuckDB."""
    q = overview_query()
    store = ClickHouseStore(f"chdb://{folder}", database=DATABASE, node="bench")
    names = list(widget_calls(fresh_reports(store), q))
    rows = {name: Row(name) for name in names}
    for name in names:
        rows[name].first_ms = _ms(widget_calls(fresh_reports(store), q)[name])
    cold: dict[str, list[float]] = {n: [] for n in names}
    cached: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(repeat):
        for name in names:
            call = widget_calls(fresh_reports(store), q)[name]
            cold[name].append(_ms(call))
            cached[name].append(_ms(call))
    page: list[float] = []
    for _ in range(repeat):
        calls = widget_calls(fresh_reports(store), q)
        page.append(_ms(lambda calls=calls: [calls[k]() for k in PAGE_KEYS]))
    cards = fresh_reports(store).cards(PROJECT, q).cards
    counts = store.fetch("SELECT (SELECT count() FROM events), (SELECT count() FROM sessions)", {})[0]
    store.close()
    return {
        "rows": {
            n: {
                "first_ms": r.first_ms,
                "cold_ms": statistics.median(cold[n]),
                "cached_ms": statistics.median(cached[n]),
            }
            for n, r in rows.items()
        },
        "page_ms": statistics.median(page),
        "cards": [[c.metric.value, c.value, c.previous] for c in cards],
        "counts": list(counts),
    }


def run_child(duck_path: Path, events: int, repeat: int) -> dict[str, Any]:
    """Run this module as a child process on the cached DuckDB file; its JSON results."""
    with tempfile.TemporaryDirectory(prefix="openpanel-bench-") as tmp:
        out = Path(tmp) / "clickhouse.json"
        cmd = [sys.executable, __file__, "--duckdb", str(duck_path), "--events", str(events)]
        cmd += ["--repeat", str(repeat), "--out", str(out)]
        subprocess.run(cmd, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def side_by_side(duck: Result | None, ch: dict[str, Any]) -> None:
    """The ClickHouse results, next to DuckDB's when both ran."""
    load = ch["load"]
    how = "reused from an earlier run" if load["reused"] else "this run"
    counts = ch["counts"]
    print(
        f"\nClickHouse (chdb {ch['chdb_version']}, in-process): events {counts[0]:,}  sessions {counts[1]:,}"
    )
    print(
        f"load ({how}): migrate-events copy {load['copy_s']:.1f} s ({load['rows']:,} rows,"
        f" {load['chunks']} chunks), verify {load['verify_s']:.1f} s,"
        f" OPTIMIZE FINAL {load['optimize_s']:.1f} s"
    )
    if duck is not None:
        same = [[c.metric.value, c.value, c.previous] for c in duck.cards] == ch["cards"]
        print(f"cards identical on both backends (value and previous period): {'yes' if same else 'NO'}")
    head = (
        f"{'widget':<30} {'duck cold':>9} {'ch cold':>9} {'ch/duck':>7} {'duck cached':>11} {'ch cached':>9}"
        f" {'ch first':>9}"
    )
    print("\n" + head)
    print("-" * len(head))
    for name, r in ch["rows"].items():
        d = duck.rows.get(name) if duck is not None else None
        ratio = f"{r['cold_ms'] / d.cold_ms:.2f}" if d is not None and d.cold_ms else "-"
        mark = "*" if name in PAGE_KEYS else " "
        print(
            f"{mark}{name:<29} {_cell(d.cold_ms if d else None, 1):>9} {r['cold_ms']:>9.1f} {ratio:>7}"
            f" {_cell(d.cached_ms if d else None, 3):>11} {r['cached_ms']:>9.3f} {r['first_ms']:>9.1f}"
        )
    print("-" * len(head))
    duck_page = duck.page_ms if duck is not None else None
    ratio = f"{ch['page_ms'] / duck_page:.2f}" if duck_page else "-"
    print(f"{'overview page (* rows), cold':<30} {_cell(duck_page, 1):>9} {ch['page_ms']:>9.1f} {ratio:>7}")


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description="child of bench/dashboard.py --backend clickhouse|both")
    parser.add_argument("--duckdb", type=Path, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import chdb

    folder = chdb_dir(args.events)
    result = {"load": load(args.duckdb, folder), "chdb_version": chdb.__version__}
    result.update(measure(folder, max(1, args.repeat)))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
