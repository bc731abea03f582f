"""Issue 5 criterion 4: the same events, pushed through the ingest pipeline into a DuckDB store and a
ClickHouse store (chdb in-process, or the server of OPENPANEL_TEST_CLICKHOUSE_URL), give identical
results in every report: overview cards, series at every interval, every top-N table, live and
realtime, the event / session / profile explorers, the project pages and the export API.

Each comparison is exact (==) on the report's own result Structs; a non-trivial expected value is
asserted too where one is cheap, so "both empty" never passes for "equal".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from openpanel_lite.dates import RangeName, resolve_period
from openpanel_lite.ingest.state_loaders import load_profile, open_sessions
from openpanel_lite.meta import clients, projects
from openpanel_lite.query import Dimension, Filter, FilterOperator, Interval, Metric, Property
from openpanel_lite.reports import events, live, overview, profiles, project_activity, realtime, sessions
from openpanel_lite.reports import top as top_tables
from openpanel_lite.reports.overview import OverviewQuery
from openpanel_lite.storage import EventStore
from tests.clickhouse.engine import clickhouse_config, drop_database, engine_url, new_database
from tests.clickhouse.parity import PROFILE_ID, seed_both
from tests.harness import LiveServer
from tests.ingest_support import live_config

LA = "America/Los_Angeles"
NOW = datetime(2025, 4, 1, tzinfo=UTC)
TIMEZONES = ("UTC", LA, "Asia/Kolkata")


class Pair:
    def __init__(self, duck: LiveServer, ch: LiveServer, project_id: str) -> None:
        self.duck, self.ch, self.project_id = duck, ch, project_id

    @property
    def stores(self) -> tuple[EventStore, EventStore]:
        return self.duck.runtime.store, self.ch.runtime.store


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("parity")
    url, database = engine_url(), new_database()
    (tmp / "duck").mkdir()
    (tmp / "ch").mkdir()
    duck = LiveServer(live_config(tmp / "duck"))
    try:
        ch = LiveServer(clickhouse_config(live_config(tmp / "ch"), url, database))
        try:
            made = [projects.create_project(s.runtime.meta, "Acme", domain="example.com") for s in (duck, ch)]
            assert made[0].id == made[1].id
            assert (
                ch.runtime.store.dialect.name == "clickhouse" and duck.runtime.store.dialect.name == "duckdb"
            )
            seed_both([(duck, made[0]), (ch, made[1])], tmp / "geo.mmdb")
            yield Pair(duck, ch, made[0].id)
        finally:
            ch.stop()
            drop_database(url, database)
    finally:
        duck.stop()


def same(pair: Pair, report: Any, *args: Any, **kw: Any) -> Any:
    """report(store, *args) on both stores; asserts equality and returns the DuckDB result."""
    duck, ch = (report(store, *args, **kw) for store in pair.stores)
    assert duck == ch
    return duck


def q(
    tz: str, *filters: Filter, start: int = 10, end: int = 12, interval: Interval | None = None
) -> OverviewQuery:
    period = resolve_period(
        RangeName.CUSTOM,
        tz,
        NOW,
        start=datetime(2025, 3, start),
        end=datetime(2025, 3, end),
        interval=interval,
    )
    return OverviewQuery(period=period, filters=filters)


FILTER_SETS: dict[str, tuple[Filter, ...]] = {
    "none": (),
    "page": (Filter(Dimension.PATH, FilterOperator.IS, ("/pricing",)),),
    "event": (Filter(Dimension.NAME, FilterOperator.IS, ("signup",)),),
    "property": (Filter(Property("plan"), FilterOperator.CONTAINS, ("PR",)),),
    "session": (Filter(Dimension.COUNTRY, FilterOperator.IS_NOT, ("DE",)),),
    "regex": (Filter(Dimension.REFERRER_NAME, FilterOperator.REGEX, ("^G",)),),
    "number": (Filter(Property("__revenue"), FilterOperator.GTE, (1000,)),),
}


@pytest.mark.parametrize("tz", TIMEZONES)
@pytest.mark.parametrize("filters", list(FILTER_SETS))
def test_cards(pair: Pair, tz: str, filters: str) -> None:
    cards = same(pair, overview.cards, pair.project_id, q(tz, *FILTER_SETS[filters]))
    if filters == "none" and tz == "UTC":
        # V1 counts twice: as user-1 in S1 (identified) and by device id in S4.
        assert [c.value for c in cards.cards] == [5, 5, 8, 1.6, 60.0, 210.0, 4999.0]


@pytest.mark.parametrize("tz", TIMEZONES)
@pytest.mark.parametrize(
    ("interval", "start", "end"),
    [
        (Interval.HOUR, 11, 12),
        (Interval.HOUR, 10, 12),
        (Interval.DAY, 8, 13),
        (Interval.WEEK, 1, 31),
        (Interval.MONTH, 1, 31),
    ],
)
def test_series_every_metric(pair: Pair, tz: str, interval: Interval, start: int, end: int) -> None:
    for filters in ((), FILTER_SETS["page"]):
        query = q(tz, *filters, start=start, end=end, interval=interval)
        for metric in overview.CARD_METRICS:
            series = same(pair, overview.series, pair.project_id, query, metric)
            assert series.interval is interval
    day = same(pair, overview.series, pair.project_id, q("UTC", interval=Interval.DAY), Metric.SESSIONS)
    assert [p.value for p in day.points] == [3, 2]


TABLES = [
    *(d.value for d in Dimension if d not in (Dimension.NAME,)),
    "pages",
    "events",
    "link_out",
    "properties.plan",
    "properties.__path",
]


@pytest.mark.parametrize("table", TABLES)
def test_top_tables(pair: Pair, table: str) -> None:
    for tz in ("UTC", LA):
        for filters in ("none", "page", "event"):
            query = q(tz, *FILTER_SETS[filters])
            result = same(pair, top_tables.top, pair.project_id, query, table, 10)
            # Paging: a second page of one row per page is the same too.
            same(pair, top_tables.top, pair.project_id, query, table, 1, 1)
            if (tz, filters, table) == ("UTC", "none", "country"):
                assert [(r.name, r.sessions) for r in result.rows] == [("GB", 3), ("US", 1), ("DE", 1)]


def test_pages_table_time_on_page_and_entry_bounce_rate(pair: Pair) -> None:
    # Worked out in test_reports_overview.py (TOP_UTC["path"], TOP_LA["path"]): the same on both stores.
    expected = {
        "UTC": [
            ("/", 3, 3, 105.0, 33.33),
            ("/docs", 2, 2, None, 100.0),
            ("/pricing", 2, 2, 180.0, None),
            ("/blog", 1, 1, None, 100.0),
        ],
        LA: [
            ("/docs", 3, 3, None, 100.0),
            ("/pricing", 3, 3, 105.0, 0.0),
            ("/", 2, 2, 105.0, 0.0),
            ("/blog", 1, 1, None, 100.0),
        ],
    }
    for tz, rows in expected.items():
        table = same(pair, top_tables.top, pair.project_id, q(tz), "pages", 10)
        assert table.columns == ["sessions", "pageviews", "avg_duration", "bounce_rate"]
        assert [(r.name, r.sessions, r.pageviews, r.avg_duration, r.bounce_rate) for r in table.rows] == rows
    # A path filter turns the session-duration card into the time to the next page view (facts §3.4).
    cards = same(pair, overview.cards, pair.project_id, q("UTC", *FILTER_SETS["page"]))
    duration = next(c for c in cards.cards if c.metric is Metric.AVG_SESSION_DURATION)
    assert (duration.value, duration.previous) == (180.0, 0.0)


def test_live_and_realtime(pair: Pair) -> None:
    for now in (datetime(2025, 3, 10, 10, 4, tzinfo=UTC), datetime(2025, 3, 11, 6, 3, tzinfo=UTC)):
        assert same(pair, live.live_visitors, pair.project_id, now).visitors == 1
        for tz in ("UTC", LA):
            rt = same(pair, realtime.realtime, pair.project_id, tz, now)
            assert rt.feed and sum(m.sessions for m in rt.minutes) > 0


def test_event_explorer(pair: Pair) -> None:
    project = pair.project_id
    names = same(pair, events.event_names, project)
    assert names[0] == "screen_view" and "signup" in names
    for kw in (
        {},
        {"names": ["screen_view"]},
        {"filters": [Filter(Dimension.PATH, FilterOperator.STARTS_WITH, ("/PR",))]},
        {"filters": [Filter(Property("plan"), FilterOperator.IS_NOT_NULL)]},
        {"profile_id": PROFILE_ID},
        {"per_page": 7, "page": 3},
    ):
        for tz in ("UTC", LA):
            page = same(pair, events.event_page, project, tz, **kw)
            assert page.items
    everything = same(pair, events.event_page, project, "UTC", per_page=500)
    assert everything.total == len(everything.items) == 32
    for item in everything.items:
        assert same(pair, events.event_detail, project, item.id, LA) is not None
    assert same(pair, events.event_detail, project, "not-a-uuid", "UTC") is None


def test_session_explorer(pair: Pair) -> None:
    page = same(pair, sessions.session_page, pair.project_id, "UTC", per_page=100)
    assert page.total == 8
    same(pair, sessions.session_page, pair.project_id, LA, per_page=3, page=2)
    same(pair, sessions.session_page, pair.project_id, "UTC", profile_id=PROFILE_ID)
    for item in page.items:
        detail = same(pair, sessions.session_detail, pair.project_id, item.id, LA)
        assert detail is not None and detail.events


def test_profile_explorer(pair: Pair) -> None:
    project = pair.project_id
    for tab in profiles.Tab:
        for search in ("", "ada", "zz-nothing"):
            same(pair, profiles.profile_page, project, "UTC", tab=tab, search=search)
    identified = same(pair, profiles.profile_page, project, "UTC", tab=profiles.Tab.IDENTIFIED)
    assert [p.id for p in identified.items] == [PROFILE_ID]
    power = same(pair, profiles.profile_page, project, LA, tab=profiles.Tab.POWER_USERS)
    for item in power.items:
        assert same(pair, profiles.profile_detail, project, item.id, LA) is not None
    detail = same(pair, profiles.profile_detail, project, PROFILE_ID, "UTC")
    assert detail.metrics.sessions >= 1
    assert same(pair, profiles.profile_detail, project, "nobody", "UTC") is None


def test_project_pages_and_ingest_reads(pair: Pair) -> None:
    for tz in ("UTC", LA):
        days = same(
            pair, project_activity.daily_sessions, pair.project_id, tz, last_day=date(2025, 3, 12), days=7
        )
        assert sum(days) == 8
    assert same(pair, project_activity.has_events, pair.project_id) is True
    assert same(pair, project_activity.has_events, "other") is False
    profile = same(pair, load_profile, pair.project_id, PROFILE_ID)
    assert profile is not None and profile.email == "ada@example.com"
    # Sessions still open an hour after the last event: none (the seed reaped them all) …
    assert same(pair, open_sessions, datetime(2025, 3, 12, 4, tzinfo=UTC), 30 * 60 * 1000) == []

    # … and the three that ended within a day of it (S3, S4, S8; the query has no ORDER BY: compared
    # as sets).
    def recent(store: EventStore) -> list[Any]:
        found = open_sessions(store, datetime(2025, 3, 12, 4, tzinfo=UTC), 86_400_000)
        return sorted(found, key=lambda s: (s.id, s.version))

    assert len(same(pair, recent)) == 3


def test_export_api(pair: Pair) -> None:
    bodies = []
    for server in (pair.duck, pair.ch):
        client, secret = clients.create_client(server.runtime.meta, pair.project_id, type="read")
        headers = {"openpanel-client-id": client.id, "openpanel-client-secret": secret}
        got = []
        for query in (
            "",
            "?limit=5&page=2",
            "?event=screen_view&includes=properties&includes=profile",
            "?start=2025-03-10&end=2025-03-11&includes=country",
            f"?profileId={PROFILE_ID}",
        ):
            reply = server.request("GET", f"/export/events{query}", None, headers)
            assert reply.status == 200, reply.text
            got.append(reply.json())
        bodies.append(got)
    assert bodies[0] == bodies[1]
    assert bodies[0][0]["meta"]["totalCount"] == 32
