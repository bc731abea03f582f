"""ClickHouseStore on a real ClickHouse engine: chdb in-process, and the same engine over HTTP through
clickhouse-connect's HTTP client and tests/clickhouse/http_front.py (issue 5 criteria 1, 2 and 5).
With OPENPANEL_TEST_CLICKHOUSE_URL set, both transports go to that server instead (failure injection
then needs the front and runs against it only).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import ClickHouseError

from openpanel_lite.config import ClickHouseConfig, Config, DataConfig, StorageConfig
from openpanel_lite.storage import open_store
from openpanel_lite.storage.clickhouse import ClickHouseStore, connect
from openpanel_lite.storage.clickhouse_schema import MIGRATIONS, Layout, migrations_table
from openpanel_lite.storage.columns import TABLES
from openpanel_lite.storage.rows import EventRow, ProfileLink, ProfileRow, SessionRow, WriteBatch
from tests.clickhouse.engine import chdb_url, drop_database, engine_url, new_database, server_url
from tests.clickhouse.http_front import ChdbHttpFront

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def front() -> Iterator[ChdbHttpFront]:
    f = ChdbHttpFront(chdb_url()) if server_url() is None else None
    if f is None:
        pytest.skip("a real server is configured: no front to inject failures into")
    yield f
    f.close()


@pytest.fixture(params=["chdb", "http"])
def url(request: pytest.FixtureRequest) -> str:
    if server_url() is not None:
        return server_url() or ""
    if request.param == "chdb":
        return chdb_url()
    return str(request.getfixturevalue("front").url)


@pytest.fixture
def database(url: str) -> Iterator[str]:
    name = new_database()
    yield name
    drop_database(engine_url(), name)


def make_store(url: str, database: str, **kw: object) -> ClickHouseStore:
    store = ClickHouseStore(url, database=database, node="n1", **kw)  # type: ignore[arg-type]
    store.migrate()
    return store


def ev(
    i: int, *, project: str = "p1", session: str = "s1", profile: str = "dev1", name: str = "screen_view"
) -> EventRow:
    return EventRow(
        id=uuid.UUID(int=i + 1),
        name=name,
        project_id=project,
        session_id=session,
        device_id="dev1",
        profile_id=profile,
        path=f"/p{i}",
        properties={"k": str(i)},
        created_at=T0 + timedelta(seconds=i),
        groups=("g",),
        latitude=1.5 if i % 2 else None,
    )


def count(store: ClickHouseStore, table: str = "events") -> int:
    return int(store.fetch(f"SELECT count() FROM {table}", {})[0][0])


def test_schema_matches_columns_and_migrations_are_tracked(url: str, database: str) -> None:
    store = make_store(url, database)
    try:
        for table, columns in TABLES.items():
            described = store.fetch(
                "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = {t:String} "
                "AND name <> '_spool_batch' ORDER BY position",
                {"d": database, "t": table},
            )
            assert described == [(c.name, c.clickhouse_type) for c in columns]
        engines = dict(
            store.fetch("SELECT name, engine FROM system.tables WHERE database = {d:String}", {"d": database})
        )
        assert engines["events"] == "MergeTree" and engines["sessions"] == "VersionedCollapsingMergeTree"
        assert engines["profiles"] == "ReplacingMergeTree" and engines["daily_metrics"] == "MaterializedView"
        versions = store.fetch("SELECT version, name FROM _migrations ORDER BY version", {})
        assert versions == [(m.version, m.name) for m in MIGRATIONS]
        store.migrate()  # a no-op when up to date
        assert count(store, "_migrations") == len(MIGRATIONS)
    finally:
        store.close()


def test_append_reads_back_rows_and_watermark(url: str, database: str) -> None:
    store = make_store(url, database)
    try:
        assert store.watermark() == 0
        rows = [ev(i) for i in range(5)]
        profile = ProfileRow(id="u1", project_id="p1", created_at=T0, last_seen_at=T0, properties={"a": "b"})
        store.append(WriteBatch(events=rows, profiles=[profile], spool_watermark=7))
        assert store.watermark() == 7
        got = store.fetch(
            "SELECT id, created_at, latitude, properties, groups FROM events ORDER BY created_at", {}
        )
        assert got == [
            (r.id, r.created_at.replace(tzinfo=None), r.latitude, r.properties, list(r.groups)) for r in rows
        ]
        # A batch the watermark already covers is not written again.
        store.append(WriteBatch(events=rows, spool_watermark=7))
        assert count(store) == 5
        daily = store.fetch(
            "SELECT date, sum(screen_views), uniqExactMerge(sessions) FROM daily_metrics_data GROUP BY date",
            {},
        )
        assert daily == [(T0.date(), 5, 1)]
    finally:
        store.close()
    # A restart reads the mark back.
    again = make_store(url, database)
    assert again.watermark() == 7
    again.close()


def test_retried_insert_is_dropped_as_duplicate(front: ChdbHttpFront) -> None:
    database = new_database()
    store = make_store(front.url, database)
    try:
        # The engine stores the block, then the answer is lost (503): the store retries with the
        # same insert_deduplication_token and ClickHouse drops the second copy.
        front.fail_next(1, lambda s: s.startswith("INSERT INTO `events`"))
        store.append(WriteBatch(events=[ev(i) for i in range(10)], spool_watermark=3))
        assert sum(s.startswith("INSERT INTO `events`") for s in front.statements) >= 2
        assert count(store) == 10 and store.watermark() == 3
    finally:
        store.close()
        drop_database(engine_url(), database)


def _crash_before_watermark(front: ChdbHttpFront, database: str, batch: WriteBatch) -> None:
    """Append until the watermark insert, which never succeeds: a process dying at that point."""
    store = make_store(front.url, database, retries=0)
    front.fail_next(1, lambda s: s.startswith("INSERT INTO `_spool_watermark`"), run=False)
    with pytest.raises(ClickHouseError):
        store.append(batch)
    front.fail_next(0, lambda s: False)
    store.close()


def test_replay_of_the_same_range_never_doubles(front: ChdbHttpFront) -> None:
    database = new_database()
    batch = WriteBatch(
        events=[ev(i) for i in range(4)],
        sessions=[SessionRow(id="s1", project_id="p1", created_at=T0, ended_at=T0)],
        spool_watermark=4,
    )
    try:
        _crash_before_watermark(front, database, batch)
        restarted = make_store(front.url, database)
        # The partial batch is visible (never doubled) and the mark has not moved: replay is due.
        assert count(restarted) == 4 and restarted.watermark() == 0
        restarted.append(batch)
        assert count(restarted) == 4 and count(restarted, "sessions") == 1 and restarted.watermark() == 4
        restarted.close()
    finally:
        drop_database(engine_url(), database)


def test_replay_with_a_different_range_replaces_the_partial_batch(front: ChdbHttpFront) -> None:
    database = new_database()
    try:
        _crash_before_watermark(
            front, database, WriteBatch(events=[ev(i) for i in range(4)], spool_watermark=4)
        )
        restarted = make_store(front.url, database)
        # The writer's catch-up cut the replay differently: records 1..6 in one batch.
        restarted.append(WriteBatch(events=[ev(i) for i in range(6)], spool_watermark=6))
        assert count(restarted) == 6 and restarted.watermark() == 6
        ids = sorted(int(r[0].int) for r in restarted.fetch("SELECT id FROM events", {}))
        assert ids == [1, 2, 3, 4, 5, 6]
        restarted.close()
    finally:
        drop_database(engine_url(), database)


def test_profile_links_delete_and_erase(url: str, database: str) -> None:
    store = make_store(url, database)
    try:
        store.append(WriteBatch(events=[ev(i) for i in range(3)] + [ev(9, project="p2")], spool_watermark=1))
        link = ProfileLink(
            project_id="p1",
            session_id="s1",
            device_id="dev1",
            profile_id="u1",
            since=T0,
            until=T0 + timedelta(seconds=1),
        )
        store.append(WriteBatch(events=[ev(3, profile="u1")], profile_links=[link], spool_watermark=2))
        got = store.fetch(
            "SELECT profile_id, count() FROM events WHERE project_id = 'p1' GROUP BY 1 ORDER BY 1", {}
        )
        assert got == [("dev1", 1), ("u1", 3)]
        store.append(
            WriteBatch(
                profiles=[ProfileRow(id="u1", project_id="p1", created_at=T0, last_seen_at=T0)],
                sessions=[SessionRow(id="s1", project_id="p1", profile_id="u1", created_at=T0, ended_at=T0)],
                spool_watermark=3,
            )
        )
        # Erase: the profile, its sessions, and every event of those sessions (the dev1 one too).
        assert store.erase_profile("p1", "u1") == 4 + 1 + 1
        assert count(store, "events") == 1 and count(store, "sessions") == 0 and count(store, "profiles") == 0
        store.delete_project("p2")
        assert count(store) == 0
        store.check()
    finally:
        store.close()


def test_open_store_builds_the_clickhouse_store(tmp_path: Path, url: str, database: str) -> None:
    cfg = Config(
        data=DataConfig(dir=str(tmp_path)),
        storage=StorageConfig(
            backend="clickhouse", clickhouse=ClickHouseConfig(url=url, database=database, node="x")
        ),
    )
    store = open_store(cfg)
    try:
        assert isinstance(store, ClickHouseStore) and store.dialect.name == "clickhouse"
        assert store.watermark() == 0 and store.node == "x"
    finally:
        store.close()


def test_cluster_ddl_is_replicated_and_distributed() -> None:
    layout = Layout("analytics", "main")
    statements = [s for m in MIGRATIONS for s in m.statements(layout)] + migrations_table(layout)
    ddl = [s for s in statements if not s.startswith("INSERT")]
    assert all(" ON CLUSTER `main`" in s for s in ddl)
    # The INSERTs (migrations' backfills) write the Distributed front tables, which spread them.
    assert [s.split("\n")[0] for s in statements if s not in ddl] == [
        "INSERT INTO `view_durations` (`project_id`, `session_id`, `origin`, `path`, `created_at`, "
        "`duration`, `sign`)",
        "INSERT INTO `page_views` (`project_id`, `session_id`, `profile_id`, `origin`, `path`, "
        "`created_at`, `previous_at`, `sign`)",
    ]
    events = [s for s in statements if "`events_local`" in s or "TABLE IF NOT EXISTS `events` " in s]
    assert (
        "ReplicatedMergeTree('/clickhouse/tables/{shard}/analytics/events_local', '{replica}')" in events[0]
    )
    assert "replicated_deduplication_window" in events[0]
    assert "ENGINE = Distributed(`main`, `analytics`, `events_local`, rand())" in events[1]
    sessions = next(s for s in statements if "`sessions_local`" in s and "Replicated" in s)
    assert "ReplicatedVersionedCollapsingMergeTree(" in sessions and "'{replica}', sign, version)" in sessions
    # The views read and write the local tables of each node.
    view = next(s for s in statements if "MATERIALIZED VIEW IF NOT EXISTS `daily_metrics`" in s)
    assert "TO `daily_metrics_data_local`" in view and "FROM `events_local`" in view
    # Every statement is valid ClickHouse syntax (parsed by the engine itself).
    client = connect(chdb_url())
    try:
        for statement in statements:
            formatted = client.query(
                "SELECT formatQuery({s:String})", parameters={"s": statement}
            ).result_rows
            assert "ON CLUSTER main" in formatted[0][0] or statement not in ddl
    finally:
        client.close()
