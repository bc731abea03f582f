"""Overview reports on the fixed event set of tests/reports_support.py, in UTC and Los Angeles.

The period is the custom range 2025-03-10 .. 2025-03-11 (two local days); the previous period is the
two days before. In Los Angeles (UTC-7 after the DST switch of 03-09) the day starts 7 hours later,
so S7 (03-10 02:00 UTC) moves to the previous period and S8 (03-12 03:00 UTC) into the current one,
and S3's revenue (03-11 06:01 UTC) to 03-10. The previous period in LA starts before the DST switch.

Sessions per period (see reports_support for the visits):
  UTC now  S7 S1 S2 S3 S4   visitors V4 V1 V2 V3   pageviews 1+3+1+2+1 = 8   bounces S7 S2 S4
  UTC prev S6 S5            visitors V4 V2         pageviews 1+2 = 3         bounces S6
  LA now   S1 S2 S3 S4 S8   visitors V1 V2 V3      pageviews 3+1+2+1+2 = 9   bounces S2 S4
  LA prev  S5 S7            visitors V2 V4         pageviews 2+1 = 3         bounces S7
Durations (0 ms sessions excluded): S1 300 s, S3 120 s, S5 600 s, S8 30 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from openpanel_lite.dates import RangeName, resolve_period
from openpanel_lite.meta import projects
from openpanel_lite.meta.projects import Project
from openpanel_lite.query import Dimension, Filter, FilterOperator, Metric, Property, QueryError
from openpanel_lite.reports.overview import Card, OverviewQuery
from openpanel_lite.reports.service import Reports
from openpanel_lite.reports.top import TopRow
from tests.harness import LiveServer
from tests.ingest_support import live_config
from tests.reports_support import seed

LA = "America/Los_Angeles"
NOW = datetime(2025, 4, 1, tzinfo=UTC)  # only custom ranges here: "now" does not matter
SITE = "https://example.com"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Project, Reports]]:
    tmp = tmp_path_factory.mktemp("reports")
    server = LiveServer(live_config(tmp))
    try:
        project = projects.create_project(server.runtime.meta, "Acme", domain="example.com")
        seed(server, project, tmp / "geo.mmdb")
        yield server, project, Reports.for_runtime(server.runtime)
    finally:
        server.stop()


def query(tz: str, *filters: Filter, start: int = 10, end: int = 12, **kw: Any) -> OverviewQuery:
    period = resolve_period(
        RangeName.CUSTOM, tz, NOW, start=datetime(2025, 3, start), end=datetime(2025, 3, end), **kw
    )
    return OverviewQuery(period=period, filters=filters)


def cards_of(*rows: tuple[Metric, Any, Any, float | None]) -> list[Card]:
    return [Card(metric=m, value=v, previous=p, change=c) for m, v, p, c in rows]


UV, SESSIONS, PV = Metric.UNIQUE_VISITORS, Metric.SESSIONS, Metric.PAGEVIEWS
VPS, BOUNCE, DURATION, REVENUE = (
    Metric.VIEWS_PER_SESSION,
    Metric.BOUNCE_RATE,
    Metric.AVG_SESSION_DURATION,
    Metric.REVENUE,
)

CARDS = {
    "UTC": cards_of(
        (UV, 4, 2, 100.0),
        (SESSIONS, 5, 2, 150.0),
        (PV, 8, 3, 166.7),
        (VPS, 1.6, 1.5, 6.7),
        (BOUNCE, 60.0, 50.0, 20.0),
        (DURATION, 210.0, 600.0, -65.0),  # (300 + 120) / 2
        (REVENUE, 4999.0, 0.0, None),
    ),
    LA: cards_of(
        (UV, 3, 2, 50.0),
        (SESSIONS, 5, 2, 150.0),
        (PV, 9, 3, 200.0),
        (VPS, 1.8, 1.5, 20.0),
        (BOUNCE, 40.0, 50.0, -20.0),
        (DURATION, 150.0, 600.0, -75.0),  # (300 + 120 + 30) / 3
        (REVENUE, 4999.0, 0.0, None),
    ),
}


def at(tz: str, *parts: int) -> datetime:
    """A wall-clock time in `tz`, as the overview reports return them."""
    return datetime(*parts).replace(tzinfo=ZoneInfo(tz))


@pytest.mark.parametrize("tz", ["UTC", LA])
def test_cards(env: tuple[LiveServer, Project, Reports], tz: str) -> None:
    _, project, reports = env
    result = reports.cards(project.id, query(tz))
    assert result.cards == CARDS[tz]
    # Wall-clock bounds tagged with the project's zone (RFC 3339 date-time needs the offset).
    assert (result.current.start, result.current.end) == (at(tz, 2025, 3, 10), at(tz, 2025, 3, 12))
    assert (result.previous.start, result.previous.end) == (at(tz, 2025, 3, 8), at(tz, 2025, 3, 10))
    assert all(t.tzinfo == ZoneInfo(tz) for t in (result.current.start, result.previous.end))
    assert [type(c.value) for c in result.cards[:3]] == [int, int, int]


# metric -> tz -> (current per day, previous per day)
DAILY: dict[Metric, dict[str, tuple[list[Any], list[Any]]]] = {
    PV: {"UTC": ([5, 3], [1, 2]), LA: ([6, 3], [0, 3])},
    SESSIONS: {"UTC": ([3, 2], [1, 1]), LA: ([3, 2], [0, 2])},
    REVENUE: {"UTC": ([0.0, 4999.0], [0.0, 0.0]), LA: ([4999.0, 0.0], [0.0, 0.0])},
    BOUNCE: {"UTC": ([66.67, 50.0], [100.0, 0.0]), LA: ([33.33, 50.0], [0.0, 50.0])},
    UV: {"UTC": ([3, 2], [1, 1]), LA: ([3, 2], [0, 2])},
}


@pytest.mark.parametrize("tz", ["UTC", LA])
@pytest.mark.parametrize("metric", list(DAILY))
def test_daily_series(env: tuple[LiveServer, Project, Reports], tz: str, metric: Metric) -> None:
    _, project, reports = env
    result = reports.series(project.id, query(tz), metric)
    current, previous = DAILY[metric][tz]
    assert [p.time for p in result.points] == [at(tz, 2025, 3, 10), at(tz, 2025, 3, 11)]
    assert [p.previous_time for p in result.points] == [at(tz, 2025, 3, 8), at(tz, 2025, 3, 9)]
    assert {p.time.tzinfo for p in result.points} == {ZoneInfo(tz)}
    assert [p.value for p in result.points] == current
    assert [p.previous for p in result.points] == previous


def test_hourly_series_is_complete(env: tuple[LiveServer, Project, Reports]) -> None:
    _, project, reports = env
    result = reports.series(project.id, query("UTC", end=11), SESSIONS)
    assert result.interval == "hour" and len(result.points) == 24
    assert [p.value for p in result.points] == [1 if h in (2, 10, 23) else 0 for h in range(24)]
    assert [p.previous for p in result.points] == [1 if h == 12 else 0 for h in range(24)]
    assert result.points[5].time == at("UTC", 2025, 3, 10, 5)
    assert result.points[5].previous_time == at("UTC", 2025, 3, 9, 5)


def rows(*items: tuple[Any, ...], prefix: str | None = None) -> list[TopRow]:
    """(name, sessions, pageviews, revenue) session rows."""
    return [TopRow(name=n, prefix=prefix, sessions=s, pageviews=p, revenue=r) for n, s, p, r in items]


def prefixed(*items: tuple[str, str, int, int, float]) -> list[TopRow]:
    return [TopRow(name=n, prefix=x, sessions=s, pageviews=p, revenue=r) for x, n, s, p, r in items]


def pages(*items: tuple[str, int, int, float | None, float | None]) -> list[TopRow]:
    """(path, sessions, pageviews, avg seconds to the next page view, bounce % of entries) rows."""
    return [
        TopRow(name=n, prefix=SITE, sessions=s, pageviews=p, avg_duration=t, bounce_rate=b)
        for n, s, p, t, b in items
    ]


def counts(*items: tuple[str, int, int]) -> list[TopRow]:
    return [TopRow(name=n, sessions=s, count=c) for n, c, s in items]


TOP_UTC: dict[str, list[TopRow]] = {
    "referrer_name": rows(
        ("", 2, 2, 0.0), ("Google", 1, 3, 0.0), ("Twitter", 1, 2, 4999.0), ("newsletter", 1, 1, 0.0)
    ),
    "referrer": rows(
        ("", 3, 3, 0.0), ("https://www.google.com", 1, 3, 0.0), ("https://twitter.com", 1, 2, 4999.0)
    ),
    "referrer_type": rows(("", 3, 3, 0.0), ("search", 1, 3, 0.0), ("social", 1, 2, 4999.0)),
    "utm_source": rows(("", 4, 7, 4999.0), ("newsletter", 1, 1, 0.0)),
    "utm_medium": rows(("", 4, 7, 4999.0), ("email", 1, 1, 0.0)),
    "country": rows(("GB", 3, 5, 0.0), ("US", 1, 2, 4999.0), ("DE", 1, 1, 0.0)),
    "region": prefixed(
        ("GB", "England", 3, 5, 0.0), ("US", "California", 1, 2, 4999.0), ("DE", "Lower Saxony", 1, 1, 0.0)
    ),
    "city": prefixed(
        ("GB", "London", 3, 5, 0.0), ("US", "Los Angeles", 1, 2, 4999.0), ("DE", "Hanover", 1, 1, 0.0)
    ),
    "device": rows(("desktop", 4, 7, 4999.0), ("mobile", 1, 1, 0.0)),
    "browser": rows(("Chrome", 3, 5, 0.0), ("Firefox", 1, 2, 4999.0), ("Mobile Safari", 1, 1, 0.0)),
    "browser_version": prefixed(
        ("Chrome", "148.0.0.0", 3, 5, 0.0),
        ("Firefox", "128.0", 1, 2, 4999.0),
        ("Mobile Safari", "17.1", 1, 1, 0.0),
    ),
    "os_version": prefixed(
        ("Windows", "10", 3, 5, 0.0), ("Linux", "", 1, 2, 4999.0), ("iOS", "17.1", 1, 1, 0.0)
    ),
    "brand": rows(("", 4, 7, 4999.0), ("Apple", 1, 1, 0.0)),
    "entry_path": prefixed((SITE, "/", 3, 6, 4999.0), (SITE, "/blog", 1, 1, 0.0), (SITE, "/docs", 1, 1, 0.0)),
    "exit_path": prefixed(
        (SITE, "/docs", 2, 4, 0.0),
        (SITE, "/pricing", 1, 2, 4999.0),
        (SITE, "/", 1, 1, 0.0),
        (SITE, "/blog", 1, 1, 0.0),
    ),
    # Time to the next view: / 120 s (S1) and 90 s (S3); /pricing 180 s (S1); the others are last views.
    # Entries: / by S7 (bounced), S1, S3; /docs by S4 and /blog by S2, both bounced; none on /pricing.
    "path": pages(
        ("/", 3, 3, 105.0, 33.33),
        ("/docs", 2, 2, None, 100.0),
        ("/pricing", 2, 2, 180.0, None),
        ("/blog", 1, 1, None, 100.0),
    ),
    "origin": [TopRow(name=SITE, sessions=5, pageviews=8)],
    "name": counts(("link_out", 1, 1), ("revenue", 1, 1), ("signup", 1, 1)),
    "link_out": counts(("https://github.com/acme", 1, 1)),
    # Every event but session_start/session_end counts; sessions include theirs.
    "properties.plan": counts(("", 10, 5), ("pro", 1, 1)),
}


@pytest.mark.parametrize("table", list(TOP_UTC))
def test_top_tables_utc(env: tuple[LiveServer, Project, Reports], table: str) -> None:
    _, project, reports = env
    result = reports.top(project.id, query("UTC"), table, limit=10)
    assert result.rows == TOP_UTC[table]
    assert result.table == table


def test_top_table_names_columns_and_paging(env: tuple[LiveServer, Project, Reports]) -> None:
    _, project, reports = env
    q = query("UTC")
    assert reports.top(project.id, q, "pages").table == "path"
    assert reports.top(project.id, q, "events").columns == ["count", "sessions"]
    assert reports.top(project.id, q, "referrerName").columns == ["sessions", "pageviews", "revenue"]
    assert reports.top(project.id, q, "path").columns == [
        "sessions",
        "pageviews",
        "avg_duration",
        "bounce_rate",
    ]
    assert reports.top(project.id, q, "origin").columns == ["sessions", "pageviews"]
    page = reports.top(project.id, q, "referrer_name", limit=2, offset=1)
    assert page.rows == TOP_UTC["referrer_name"][1:3] and (page.limit, page.offset) == (2, 1)
    with pytest.raises(QueryError, match="unknown field 'nope'"):
        reports.top(project.id, q, "nope")
    with pytest.raises(QueryError, match="limit"):
        reports.top(project.id, q, "country", limit=0)


TOP_LA: dict[str, list[TopRow]] = {
    "referrer_name": rows(
        ("", 2, 3, 0.0), ("Google", 1, 3, 0.0), ("Twitter", 1, 2, 4999.0), ("newsletter", 1, 1, 0.0)
    ),
    "country": rows(("GB", 2, 4, 0.0), ("US", 2, 4, 4999.0), ("DE", 1, 1, 0.0)),
    # S7 is before the range, S8 in it: /pricing 180 s (S1) and 30 s (S8); S8 entered on /pricing.
    "path": pages(
        ("/docs", 3, 3, None, 100.0),
        ("/pricing", 3, 3, 105.0, 0.0),
        ("/", 2, 2, 105.0, 0.0),
        ("/blog", 1, 1, None, 100.0),
    ),
    "entry_path": prefixed(
        (SITE, "/", 2, 5, 4999.0),
        (SITE, "/pricing", 1, 2, 0.0),
        (SITE, "/blog", 1, 1, 0.0),
        (SITE, "/docs", 1, 1, 0.0),
    ),
}


@pytest.mark.parametrize("table", list(TOP_LA))
def test_top_tables_los_angeles(env: tuple[LiveServer, Project, Reports], table: str) -> None:
    _, project, reports = env
    assert reports.top(project.id, query(LA), table).rows == TOP_LA[table]


# ---------------------------------------------------------------------------------------------- filters

PRICING = Filter(Dimension.PATH, FilterOperator.IS, ("/pricing",))


def test_page_filter_counts_matching_page_views(env: tuple[LiveServer, Project, Reports]) -> None:
    _, project, reports = env
    q = query("UTC", PRICING)
    # Now: the /pricing views of S1 and S3. Before: S6's single (bounced) view.
    assert reports.cards(project.id, q).cards == cards_of(
        (UV, 2, 1, 100.0),
        (SESSIONS, 2, 1, 100.0),
        (PV, 2, 1, 100.0),
        (VPS, 1.0, 1.0, 0.0),
        (BOUNCE, 0.0, 100.0, -100.0),
        # Time from a /pricing view to the next page view (facts §3.4): S1's 180 s; S3's and S6's
        # /pricing views were their sessions' last.
        (DURATION, 180.0, 0.0, None),
        (REVENUE, 4999.0, 0.0, None),  # S3's revenue event was on /pricing
    )
    # Session tables keep the sessions with a matching event, with all their page views.
    assert reports.top(project.id, q, "referrer_name").rows == rows(
        ("Google", 1, 3, 0.0), ("Twitter", 1, 2, 4999.0)
    )
    assert reports.top(project.id, q, "path").rows == pages(("/pricing", 2, 2, 180.0, None))
    assert [p.value for p in reports.series(project.id, q, DURATION).points] == [180.0, 0.0]
    assert [p.value for p in reports.series(project.id, q, PV).points] == [1, 1]


def test_event_and_property_filters_keep_matching_sessions(env: tuple[LiveServer, Project, Reports]) -> None:
    _, project, reports = env
    expected = cards_of(
        (UV, 1, 0, None),
        (SESSIONS, 1, 0, None),
        (PV, 3, 0, None),
        (VPS, 3.0, 0.0, None),
        (BOUNCE, 0.0, 0.0, None),
        (DURATION, 300.0, 0.0, None),
        (REVENUE, 0.0, 0.0, None),  # revenue events never are signups
    )
    signup = Filter(Dimension.NAME, FilterOperator.IS, ("signup",))
    assert reports.cards(project.id, query("UTC", signup)).cards == expected
    pro = Filter(Property("plan"), FilterOperator.IS, ("pro",))
    assert reports.cards(project.id, query("UTC", pro)).cards == expected
    assert reports.top(project.id, query("UTC", pro), "country").rows == rows(("GB", 1, 3, 0.0))


def test_session_filter(env: tuple[LiveServer, Project, Reports]) -> None:
    _, project, reports = env
    us = Filter(Dimension.COUNTRY, FilterOperator.IS, ("US",))
    result = reports.cards(project.id, query(LA, us))
    # LA: S3 and S8 (V3); before: nothing.
    assert [(c.value, c.previous) for c in result.cards] == [
        (1, 0), (2, 0), (4, 0), (2.0, 0.0), (0.0, 0.0), (75.0, 0.0), (4999.0, 0.0)
    ]  # fmt: skip
    assert reports.top(project.id, query(LA, us), "path").rows == pages(
        ("/pricing", 2, 2, 30.0, 0.0), ("/", 1, 1, 90.0, 0.0), ("/docs", 1, 1, None, None)
    )


def test_live_visitors(env: tuple[LiveServer, Project, Reports]) -> None:
    _, project, reports = env
    assert reports.live_visitors(project.id, datetime(2025, 3, 11, 6, 3, tzinfo=UTC)).visitors == 1
    assert reports.live_visitors(project.id, datetime(2025, 3, 11, 6, 8, tzinfo=UTC)).visitors == 0
    assert reports.live_visitors(project.id, datetime(2025, 3, 10, 10, 4, 30, tzinfo=UTC)).visitors == 1
