"""Issue 5 criterion 6: `openpanel migrate-events --to clickhouse` copies a DuckDB store into ClickHouse,
survives an interruption and resumes without doubling, verifies counts per (table, project, day),
carries the spool watermark over and only then switches the config."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from openpanel_lite.config import load
from openpanel_lite.migrate_events import (
    MigrationError,
    clickhouse_counts,
    copy_events,
    duckdb_counts,
    migrate_events,
    progress_bar,
    verify,
)
from openpanel_lite.paths import events_path
from openpanel_lite.storage.clickhouse import ClickHouseStore
from openpanel_lite.storage.duckdb import DuckDBStore
from openpanel_lite.storage.rows import SessionRow, WriteBatch
from tests.clickhouse.engine import drop_database, engine_url, new_database
from tests.test_clickhouse_store import ev

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


class Interrupted(Exception):
    pass


def _seed(data_dir: Path) -> None:
    store = DuckDBStore(events_path(data_dir), memory_limit="256MiB", threads=1)
    try:
        store.migrate()
        # 2 projects x 40 events every 2 hours from T0: 4 days each, 8 (project, day) chunks of events.
        events = [
            msgspec.structs.replace(ev(i + 100 * n, project=p), created_at=T0 + timedelta(hours=2 * i))
            for n, p in enumerate(("p1", "p2"))
            for i in range(40)
        ]
        sessions = [
            SessionRow(id=f"s{i}", project_id="p1", created_at=T0 + timedelta(days=i), ended_at=T0)
            for i in range(3)
        ]
        store.append(WriteBatch(events=events, sessions=sessions, spool_watermark=41))
    finally:
        store.close()


def test_interrupted_copy_resumes_verifies_and_switches(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _seed(data)
    database = new_database()
    config_file = tmp_path / "openpanel.toml"
    config_file.write_text(
        '[server]\nport = 3999\n\n[storage]\nbackend = "duckdb"\n\n[meta]\nbusy_timeout_ms = 100\n'
    )
    cfg = load(
        config_file,
        {},
        {
            "data.dir": str(data),
            "storage.clickhouse.url": engine_url(),
            "storage.clickhouse.database": database,
            "storage.clickhouse.node": "n1",
        },
    )
    try:
        source = DuckDBStore(events_path(data), memory_limit="256MiB", threads=1)
        target = ClickHouseStore(engine_url(), database=database, node="n1")
        target.migrate()
        want = duckdb_counts(source)
        assert sum(n for (t, _, _), n in want.items() if t == "events") == 80 and len(want) == 11

        def stop_after_3(done: int, total: int, rows: int) -> None:
            if done == 3:
                raise Interrupted

        with pytest.raises(Interrupted):
            copy_events(source, target, stop_after_3)
        partial = clickhouse_counts(target)
        assert 0 < sum(partial.values()) < sum(want.values())
        with pytest.raises(MigrationError, match="row counts differ"):
            verify(source, target)
        # A chunk cut short: half of one day's rows are gone from ClickHouse.
        (table, project, day), n = next((k, v) for k, v in sorted(partial.items()) if v > 1)
        first = "SELECT id FROM events WHERE project_id = {p:String} ORDER BY created_at LIMIT 1"
        target.delete_where("events", f"project_id = {{p:String}} AND id IN ({first})", {"p": project})
        source.close()
        target.close()

        out = io.StringIO()
        report = migrate_events(cfg, config_file, progress_bar(out))
        assert report.chunks == 11 and report.skipped_chunks == 2 and report.copied_chunks == 9
        assert report.watermark == 41 and report.switched
        assert (
            out.getvalue()
            .rstrip()
            .endswith("[" + "#" * 30 + "] 11/11 chunks, " + f"{report.rows:,} rows copied")
        )
        assert (
            'backend = "clickhouse"' in config_file.read_text()
            and "busy_timeout_ms = 100" in config_file.read_text()
        )
        switched = load(config_file, {}, {"data.dir": str(data), "storage.clickhouse.url": engine_url()})
        assert switched.storage.backend == "clickhouse"

        source = DuckDBStore(events_path(data), memory_limit="256MiB", threads=1)
        target = ClickHouseStore(engine_url(), database=database, node="n1")
        target.migrate()
        try:
            assert clickhouse_counts(target) == duckdb_counts(source)
            assert target.watermark() == 41
            # Same rows, not only the same counts.
            cols = "id, name, profile_id, path, properties, created_at"
            assert sorted(target.fetch(f"SELECT {cols} FROM events", {})) == sorted(
                source.fetch(f"SELECT {cols} FROM events", {})
            )
        finally:
            source.close()
            target.close()
        # Running it again copies nothing.
        assert migrate_events(cfg, None).copied_chunks == 0
    finally:
        drop_database(engine_url(), database)
