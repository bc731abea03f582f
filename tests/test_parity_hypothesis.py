"""Differential test (issue 5 criterion 4): Hypothesis draws an event set — visitors, pages, referrers,
custom events with properties, times over a few days — tracks it through the real ingest Pipeline
(sessions, device ids, referrers, UA), writes the same WriteBatch to a DuckDB and a ClickHouse (chdb)
store, then draws report parameters (range, zone, interval, filters, top-N table, paging) and checks
that every report answers the same on both. Each example uses a fresh project id in the same two
stores. Both tests are opt-in (`-m reliability`) while they still find differences (docs/scale-out.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openpanel_lite.dates import RangeName, resolve_period
from openpanel_lite.ingest.identity import Salts
from openpanel_lite.ingest.pipeline import Pipeline, RequestInfo, Rows
from openpanel_lite.ingest.profiles import ProfileBook
from openpanel_lite.ingest.schemas import TrackPayload
from openpanel_lite.ingest.sessions import SessionTracker
from openpanel_lite.ingest.spool import SpoolRecord
from openpanel_lite.ingest.writer import build_batch
from openpanel_lite.meta.projects import Project
from openpanel_lite.query import Dimension, Filter, FilterOperator, Interval, Property, QueryError
from openpanel_lite.reports import events, overview
from openpanel_lite.reports import top as top_tables
from openpanel_lite.reports.overview import OverviewQuery
from openpanel_lite.storage.clickhouse import ClickHouseStore
from openpanel_lite.storage.duckdb import DuckDBStore
from tests.clickhouse.engine import drop_database, engine_url, new_database
from tests.ingest_support import CHROME_WIN
from tests.reports_support import FIREFOX_LINUX, IPHONE

BASE = datetime(2025, 3, 10, tzinfo=UTC)
PATHS = ["/", "/pricing", "/docs", "/blog", "/Pricing/Plans"]
REFERRERS = [None, "https://www.google.com/", "https://twitter.com/", "https://news.example.org/a"]
AGENTS = [CHROME_WIN, IPHONE, FIREFOX_LINUX]
VALUES = ["pro", "free", "12", "3.5", "-1", "Ünï", "a_b", ""]
FIELDS = [Dimension.PATH, Dimension.REFERRER_NAME, Dimension.BROWSER, Dimension.NAME, Property("plan")]
OPERATORS = [
    FilterOperator.IS,
    FilterOperator.IS_NOT,
    FilterOperator.CONTAINS,
    FilterOperator.STARTS_WITH,
    FilterOperator.ENDS_WITH,
    FilterOperator.REGEX,
    FilterOperator.IS_NULL,
    FilterOperator.GT,
    FilterOperator.LTE,
]
TABLES = ["referrer_name", "browser", "pages", "events", "entry_path", "exit_path", "properties.plan", "city"]


@pytest.fixture(scope="module")
def stores() -> Iterator[tuple[DuckDBStore, ClickHouseStore]]:
    database = new_database()
    duck = DuckDBStore(":memory:", memory_limit="256MiB", threads=1)
    duck.migrate()
    ch = ClickHouseStore(engine_url(), database=database, node="hyp")
    ch.migrate()
    yield duck, ch
    duck.close()
    ch.close()
    drop_database(engine_url(), database)


event_strategy = st.tuples(
    st.integers(0, 3 * 24 * 60),  # minute offset from BASE
    st.integers(0, 5),  # visitor
    st.sampled_from(PATHS),
    st.sampled_from(REFERRERS),
    st.sampled_from(["screen_view", "screen_view", "signup", "click"]),
    st.sampled_from(VALUES),
)
filter_strategy = st.builds(
    lambda field, op, values: Filter(field, op, tuple(values)),
    st.sampled_from(FIELDS),
    st.sampled_from(OPERATORS),
    st.lists(
        st.sampled_from(["/pricing", "pro", "Google", "^/d", "1", "Chrome", "ün", "3"]),
        min_size=1,
        max_size=2,
    ),
)


def _track(project_id: str, draws: list[tuple[int, int, str, str | None, str, str]]) -> Any:
    project = Project(
        id=project_id,
        name="P",
        domain="example.com",
        timezone="UTC",
        cors=(),
        filters=(),
        settings={},
        allow_unsafe_revenue_tracking=False,
        created_at=BASE,
        updated_at=BASE,
    )
    tracker = SessionTracker()
    # Anonymous track calls only: the profile book is never asked.
    pipeline = Pipeline(
        tracker=tracker, profiles=ProfileBook(_no_profile), geo=None, salts=Salts(current="s", previous="s")
    )
    records = []
    for seq, (minute, visitor, path, referrer, name, value) in enumerate(sorted(draws), start=1):
        when = BASE + timedelta(minutes=minute)
        ended, _ = tracker.reap(int(when.timestamp() * 1000))
        rows = Rows(events=ended)
        props: dict[str, Any] = {"__path": "https://example.com" + path}
        if referrer:
            props["__referrer"] = referrer
        if name != "screen_view":
            props["plan"] = value
        req = RequestInfo(
            project=project,
            ip=f"10.0.0.{visitor}",
            user_agent=AGENTS[visitor % len(AGENTS)],
            headers={},
            secret_verified=True,
            sdk_name="web",
            sdk_version="1",
            received_at=when,
        )
        pipeline.track(req, TrackPayload(name=name, properties=props, profile_id=None, groups=()), rows)
        records.append((seq, _record(rows)))
    end = BASE + timedelta(days=4)
    records.append((len(records) + 1, _record(Rows(events=tracker.reap(int(end.timestamp() * 1000))[0]))))
    return build_batch(records)


async def _no_profile(project_id: str, profile_id: str) -> None:
    return None


def _record(rows: Rows) -> SpoolRecord:
    return SpoolRecord(
        events=tuple(rows.events),
        profiles=tuple(rows.profiles),
        sessions=tuple(rows.sessions),
        groups=tuple(rows.groups),
        bots=tuple(rows.bots),
        profile_links=tuple(rows.links),
    )


def _check(
    stores: tuple[DuckDBStore, ClickHouseStore],
    draws: list[Any],
    tz: str,
    days: tuple[int, int],
    interval: Interval,
    filters: list[Filter],
    table: str,
    page: int,
) -> None:
    duck, ch = stores
    project_id = f"h{uuid.uuid4().hex[:10]}"
    batch = _track(project_id, draws)
    duck.append(batch)
    ch.append(batch)
    start = datetime(2025, 3, 9 + min(days)) if min(days) != max(days) else datetime(2025, 3, 10)
    end = datetime(2025, 3, 9 + max(days) + 1)
    period = resolve_period(RangeName.CUSTOM, tz, BASE, start=start, end=end, interval=interval)
    q = OverviewQuery(period=period, filters=tuple(filters))
    assert overview.cards(duck, project_id, q) == overview.cards(ch, project_id, q)
    for metric in overview.CARD_METRICS:
        assert overview.series(duck, project_id, q, metric) == overview.series(ch, project_id, q, metric)
    assert top_tables.top(duck, project_id, q, table, 3, page * 3) == top_tables.top(
        ch, project_id, q, table, 3, page * 3
    )
    event_filters = [f for f in filters if f.field in (Dimension.PATH, Dimension.NAME, Property("plan"))]
    listed = [
        events.event_page(s, project_id, tz, filters=event_filters, per_page=5, page=page + 1) for s in stores
    ]
    assert listed[0] == listed[1]


def _intervals(days: tuple[int, int]) -> st.SearchStrategy[Interval]:
    return st.sampled_from(
        [Interval.HOUR, Interval.DAY] if abs(days[0] - days[1]) < 2 else [Interval.DAY, Interval.WEEK]
    )


report_params = st.tuples(
    st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Kolkata", "Europe/Berlin"]),
    st.tuples(st.integers(0, 4), st.integers(0, 4)),
    st.lists(filter_strategy, max_size=2),
    st.sampled_from(TABLES),
    st.integers(0, 1),
)


def _run(
    stores: tuple[DuckDBStore, ClickHouseStore], draws: list[Any], params: Any, data: st.DataObject
) -> None:
    tz, days, filters, table, page = params
    interval = data.draw(_intervals(days))
    if abs(days[0] - days[1]) < 1 and interval is Interval.WEEK:
        interval = Interval.DAY
    try:
        _check(stores, draws, tz, days, interval, filters, table, page)
    except QueryError:  # parameters the reports refuse (both stores alike) are not a parity question
        return


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(draws=st.lists(event_strategy, min_size=1, max_size=25), params=report_params, data=st.data())
def test_random_events_and_reports_agree(
    stores: Any, draws: list[Any], params: Any, data: st.DataObject
) -> None:
    _run(stores, draws, params, data)


@pytest.mark.reliability
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(draws=st.lists(event_strategy, min_size=1, max_size=80), params=report_params, data=st.data())
def test_random_events_and_reports_agree_long(
    stores: Any, draws: list[Any], params: Any, data: st.DataObject
) -> None:
    _run(stores, draws, params, data)
