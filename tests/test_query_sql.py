"""The query compiler on a small seeded DuckDB store: every Metric, Dimension, FilterOperator and
Interval has SQL and gives exact numbers; values are always bound, never spliced into the SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import msgspec
import pytest

from openpanel_lite.ingest.page_visits import page_views_of
from openpanel_lite.ingest.view_times import durations_of
from openpanel_lite.query import (
    DateRange,
    Dimension,
    Filter,
    FilterOperator,
    Interval,
    Metric,
    Order,
    Property,
    Query,
    QueryError,
    default_interval,
    parse_field,
)
from openpanel_lite.storage.columns import column_names
from openpanel_lite.storage.dialects import DUCKDB
from openpanel_lite.storage.duckdb import DuckDBStore
from openpanel_lite.storage.rows import EventRow, SessionRow, WriteBatch
from openpanel_lite.storage.sql import (
    DIMENSIONS,
    FILTER_OPERATORS,
    METRICS,
    Grain,
    choose_grain,
    compile_query,
    result_columns,
)

P = "proj"
JAN1 = datetime(2025, 1, 1)
RANGE = DateRange(start=JAN1, end=datetime(2025, 1, 3))
_ids = count(1)

# Three sessions of project P in RANGE: s1 and s3 by visitor u1, s2 (the one bounce) by u2.
S1 = dict(
    country="SE", region="Stockholm", city="Stockholm", device="desktop", browser="Chrome",
    browser_version="120", os="Windows", os_version="10", brand="", model="",
    referrer="https://google.com", referrer_name="Google", referrer_type="search",
)  # fmt: skip
S2 = dict(
    country="US", region="California", city="San Francisco", device="mobile", browser="Firefox",
    browser_version="115.0", os="iOS", os_version="17.1", brand="Apple", model="iPhone",
    referrer="https://twitter.com", referrer_name="Twitter", referrer_type="social",
)  # fmt: skip
S3 = dict(
    country="SE", region="Skåne", city="Malmö", device="desktop", browser="Chrome",
    browser_version="121", os="macOS", os_version="14", brand="Apple", model="Macintosh", referrer="",
    referrer_name="", referrer_type="",
)  # fmt: skip
UTM1 = {
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "winter",
    "utm_term": "shoes",
    "utm_content": "ad1",
}
UTM3 = {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "winter"}
A, BLOG = "https://a.com", "https://blog.a.com"


def ev(session: str, profile: str, name: str, at: datetime, path: str, origin: str, **kw: Any) -> EventRow:
    return EventRow(
        id=uuid.UUID(int=next(_ids)), name=name, project_id=kw.pop("project_id", P), session_id=session,
        profile_id=profile, device_id=profile, path=path, origin=origin, created_at=at, **kw,
    )  # fmt: skip


def query_props(utm: dict[str, str]) -> dict[str, str]:
    return {f"__query.{k}": v for k, v in utm.items()}


def seed_batch() -> WriteBatch:
    t1, t2, t3 = JAN1 + timedelta(hours=10), JAN1 + timedelta(hours=11), JAN1 + timedelta(days=1, hours=9)
    s1_v1 = SessionRow(
        id="s1", project_id=P, profile_id="u1", device_id="u1", created_at=t1, ended_at=t1, is_bounce=True,
        entry_origin=A, entry_path="/", exit_origin=A, exit_path="/", screen_view_count=1, **S1, **UTM1,
    )  # fmt: skip
    sessions = [
        s1_v1,
        # Extended: the first version is cancelled (-1, v1) and replaced (+1, v2).
        msgspec.structs.replace(s1_v1, sign=-1),
        msgspec.structs.replace(
            s1_v1,
            version=2,
            is_bounce=False,
            exit_path="/pricing",
            ended_at=t1 + timedelta(minutes=5),
            duration=300_000,
            screen_view_count=3,
            event_count=1,
        ),  # fmt: skip
        SessionRow(
            id="s2",
            project_id=P,
            profile_id="u2",
            device_id="u2",
            created_at=t2,
            ended_at=t2,
            is_bounce=True,
            entry_origin=A,
            entry_path="/",
            exit_origin=A,
            exit_path="/",
            screen_view_count=1,
            **S2,
        ),  # fmt: skip
        SessionRow(
            id="s3",
            project_id=P,
            profile_id="u1",
            device_id="u1",
            created_at=t3,
            ended_at=t3 + timedelta(seconds=90),
            is_bounce=False,
            entry_origin=BLOG,
            entry_path="/blog",
            exit_origin=A,
            exit_path="/pricing",
            screen_view_count=2,
            event_count=1,
            duration=90_000,
            revenue=1999.0,
            **S3,
            **UTM3,
        ),  # fmt: skip
        # Outside the range, and another project inside it: neither may show up.
        SessionRow(id="s9", project_id=P, profile_id="u9", created_at=JAN1 + timedelta(days=4), ended_at=t3),
        SessionRow(id="x1", project_id="other", profile_id="u1", created_at=t1, ended_at=t1, **S1),
    ]
    events = [
        ev("s1", "u1", "session_start", t1, "/", A, properties=query_props(UTM1), **S1),
        ev(
            "s1",
            "u1",
            "screen_view",
            t1 + timedelta(milliseconds=100),
            "/",
            A,
            properties=query_props(UTM1),
            **S1,
        ),
        ev("s1", "u1", "screen_view", t1 + timedelta(minutes=2), "/docs", A, **S1),
        ev("s1", "u1", "signup", t1 + timedelta(minutes=3), "/docs", A, properties={"plan": "pro"}, **S1),
        ev("s1", "u1", "screen_view", t1 + timedelta(minutes=5), "/pricing", A, **S1),
        ev("s2", "u2", "session_start", t2, "/", A, **S2),
        ev("s2", "u2", "screen_view", t2, "/", A, **S2),
        ev("s3", "u1", "session_start", t3, "/blog", BLOG, properties=query_props(UTM3), **S3),
        ev("s3", "u1", "screen_view", t3, "/blog", BLOG, properties=query_props(UTM3), **S3),
        ev("s3", "u1", "screen_view", t3 + timedelta(minutes=1), "/pricing", A, **S3),
        ev("s3", "u1", "revenue", t3 + timedelta(seconds=90), "/pricing", A, revenue=1999, **S3),
        # A server event: no session, no profile.
        ev("", "", "server_ping", JAN1 + timedelta(hours=12), "", ""),
        ev("s9", "u9", "screen_view", JAN1 + timedelta(days=4), "/", A),
        ev("x1", "u1", "screen_view", t1, "/", A, project_id="other", **S1),
    ]
    return WriteBatch(
        events=events,
        sessions=sessions,
        view_durations=durations_of(events),
        page_views=page_views_of(events),
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    path: Path = tmp_path_factory.mktemp("query") / "events.duckdb"
    s = DuckDBStore(path, memory_limit="256MiB", threads=2)
    s.migrate()
    s.append(seed_batch())
    yield s
    s.close()


def run(store: DuckDBStore, q: Query) -> list[tuple[Any, ...]]:
    sql, params = compile_query(q, DUCKDB)
    return store.fetch(sql, params)


def q(*metrics: Metric, **kw: Any) -> Query:
    return Query(project_id=P, range=kw.pop("range", RANGE), metrics=metrics, **kw)


EVENT_GRAIN = Filter(Dimension.NAME, FilterOperator.IS_NOT_NULL)  # true for every event
SCREEN_VIEWS = Filter(Dimension.NAME, FilterOperator.IS, ("screen_view",))


# ---------------------------------------------------------------------------- tables are complete


def test_every_vocabulary_member_has_sql() -> None:
    assert set(METRICS) == set(Metric)
    assert set(DIMENSIONS) == set(Dimension)
    assert set(FILTER_OPERATORS) == set(FilterOperator)
    assert set(DUCKDB.time_bucket) == set(Interval)
    for dim, spec in DIMENSIONS.items():
        assert spec.sessions is not None or spec.events is not None, dim
        assert spec.sessions is None or spec.sessions in column_names("sessions"), dim
        assert (
            spec.events is None or isinstance(spec.events, Property) or spec.events in column_names("events")
        )


# ---------------------------------------------------------------------------- metrics

SESSION_TOTALS = {
    Metric.UNIQUE_VISITORS: 2,
    Metric.SESSIONS: 3,
    Metric.PAGEVIEWS: 6,
    Metric.VIEWS_PER_SESSION: 2.0,
    Metric.BOUNCE_RATE: 33.33,
    Metric.AVG_SESSION_DURATION: 195.0,  # (300 s + 90 s) / 2; s2's 0 ms excluded
    Metric.REVENUE: 1999.0,
    Metric.EVENTS: 8,
}
# The same from events: the server event (no session) is the one difference.
EVENT_TOTALS = {**SESSION_TOTALS, Metric.EVENTS: 9}
SESSION_METRICS = tuple(m for m in Metric if METRICS[m].sessions is not None)


def test_only_time_on_page_is_an_events_only_metric() -> None:
    assert set(Metric) - set(SESSION_METRICS) == {Metric.AVG_TIME_ON_PAGE}


@pytest.mark.parametrize("metric", SESSION_METRICS)
def test_each_metric_on_both_grains(store: DuckDBStore, metric: Metric) -> None:
    assert run(store, q(metric)) == [(SESSION_TOTALS[metric],)]
    assert run(store, q(metric, filters=(EVENT_GRAIN,))) == [(EVENT_TOTALS[metric],)]


def test_all_metrics_at_once_and_column_names(store: DuckDBStore) -> None:
    query = q(*SESSION_METRICS)
    assert run(store, query) == [tuple(SESSION_TOTALS[m] for m in SESSION_METRICS)]
    assert result_columns(query) == tuple(m.value for m in SESSION_METRICS)


def test_empty_range_gives_zeros(store: DuckDBStore) -> None:
    empty = DateRange(start=datetime(2024, 1, 1), end=datetime(2024, 1, 2))
    zeros = (0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0)
    assert run(store, q(*SESSION_METRICS, range=empty)) == [zeros]
    assert run(store, q(*SESSION_METRICS, range=empty, filters=(EVENT_GRAIN,))) == [zeros]
    assert run(store, q(*Metric, range=empty)) == [(*zeros, 0.0)]


# s1 views "/" at +100 ms, "/docs" at 2 min, "/pricing" at 5 min; s2 only "/"; s3 "/blog", then
# "/pricing" a minute later. Gaps: 119.9 s, 180 s, 60 s; last views of a session have none.
TIME_ON_PAGE_MS = (119_900, 180_000, 60_000)


def test_avg_time_on_page_is_the_mean_gap_to_the_next_screen_view(store: DuckDBStore) -> None:
    # Events only: the query reads events even without an event field.
    assert choose_grain(q(Metric.AVG_TIME_ON_PAGE)) is Grain.EVENTS
    mean_ms = round(sum(TIME_ON_PAGE_MS) / len(TIME_ON_PAGE_MS), 2)
    assert run(store, q(Metric.AVG_TIME_ON_PAGE)) == [(mean_ms / 1000,)]
    by_page = q(
        Metric.PAGEVIEWS,
        Metric.AVG_TIME_ON_PAGE,
        dimensions=(Dimension.PATH,),
        filters=(SCREEN_VIEWS,),
        order=(Order(Metric.PAGEVIEWS), Order(Metric.AVG_TIME_ON_PAGE)),
    )
    assert run(store, by_page) == [
        ("/", 2, 119.9),
        ("/pricing", 2, 0.0),
        ("/docs", 1, 180.0),
        ("/blog", 1, 60.0),
    ]
    # A path filter keeps the window whole: /docs still runs until the /pricing view after it.
    docs = Filter(Dimension.PATH, FilterOperator.IS, ("/docs",))
    assert run(store, q(Metric.AVG_TIME_ON_PAGE, filters=(docs,))) == [(180.0,)]
    with pytest.raises(QueryError, match="events only"):
        compile_query(q(Metric.AVG_TIME_ON_PAGE, grain=Grain.SESSIONS), DUCKDB)


# ---------------------------------------------------------------------------- dimensions

# Breakdowns by sessions (descending, then value), from the sessions table unless event-only.
BREAKDOWNS: dict[Dimension, list[tuple[str, int]]] = {
    Dimension.NAME: [
        ("screen_view", 3),
        ("session_start", 3),
        ("revenue", 1),
        ("signup", 1),
        ("server_ping", 0),
    ],
    Dimension.PATH: [("/", 2), ("/pricing", 2), ("/blog", 1), ("/docs", 1), ("", 0)],
    Dimension.ORIGIN: [(A, 3), (BLOG, 1), ("", 0)],
    Dimension.REFERRER: [("", 1), ("https://google.com", 1), ("https://twitter.com", 1)],
    Dimension.REFERRER_NAME: [("", 1), ("Google", 1), ("Twitter", 1)],
    Dimension.REFERRER_TYPE: [("", 1), ("search", 1), ("social", 1)],
    Dimension.UTM_SOURCE: [("", 1), ("google", 1), ("newsletter", 1)],
    Dimension.UTM_MEDIUM: [("", 1), ("cpc", 1), ("email", 1)],
    Dimension.UTM_CAMPAIGN: [("winter", 2), ("", 1)],
    Dimension.UTM_TERM: [("", 2), ("shoes", 1)],
    Dimension.UTM_CONTENT: [("", 2), ("ad1", 1)],
    Dimension.COUNTRY: [("SE", 2), ("US", 1)],
    Dimension.REGION: [("California", 1), ("Skåne", 1), ("Stockholm", 1)],
    Dimension.CITY: [("Malmö", 1), ("San Francisco", 1), ("Stockholm", 1)],
    Dimension.DEVICE: [("desktop", 2), ("mobile", 1)],
    Dimension.BROWSER: [("Chrome", 2), ("Firefox", 1)],
    Dimension.BROWSER_VERSION: [("115.0", 1), ("120", 1), ("121", 1)],
    Dimension.OS: [("Windows", 1), ("iOS", 1), ("macOS", 1)],
    Dimension.OS_VERSION: [("10", 1), ("14", 1), ("17.1", 1)],
    Dimension.BRAND: [("Apple", 2), ("", 1)],
    Dimension.MODEL: [("", 1), ("Macintosh", 1), ("iPhone", 1)],
    Dimension.ENTRY_PATH: [("/", 2), ("/blog", 1)],
    Dimension.ENTRY_ORIGIN: [(A, 2), (BLOG, 1)],
    # s1's cancelled first version also exited on "/": it must not count.
    Dimension.EXIT_PATH: [("/pricing", 2), ("/", 1)],
    Dimension.EXIT_ORIGIN: [(A, 3)],
}


def test_breakdown_table_covers_every_dimension() -> None:
    assert set(BREAKDOWNS) == set(Dimension)


@pytest.mark.parametrize("dim", list(Dimension))
def test_each_dimension_breakdown(store: DuckDBStore, dim: Dimension) -> None:
    assert run(store, q(Metric.SESSIONS, dimensions=(dim,))) == BREAKDOWNS[dim]


def test_event_dimensions_read_utms_from_properties(store: DuckDBStore) -> None:
    query = q(Metric.PAGEVIEWS, dimensions=(Dimension.UTM_SOURCE,), filters=(SCREEN_VIEWS,))
    assert choose_grain(query) is Grain.EVENTS
    assert run(store, query) == [("", 4), ("google", 1), ("newsletter", 1)]


def test_top_pages_with_session_metrics(store: DuckDBStore) -> None:
    metrics = (Metric.PAGEVIEWS, Metric.SESSIONS, Metric.UNIQUE_VISITORS, Metric.BOUNCE_RATE)
    rows = run(
        store, q(*metrics, Metric.AVG_SESSION_DURATION, dimensions=(Dimension.PATH,), filters=(SCREEN_VIEWS,))
    )
    assert rows == [
        ("/", 2, 2, 2, 50.0, 300.0),
        ("/pricing", 2, 2, 1, 0.0, 195.0),
        ("/blog", 1, 1, 1, 0.0, 90.0),
        ("/docs", 1, 1, 1, 0.0, 300.0),
    ]


def test_property_breakdown_and_two_dimensions(store: DuckDBStore) -> None:
    query = q(Metric.EVENTS, dimensions=(Property("plan"), Dimension.COUNTRY), filters=(EVENT_GRAIN,))
    assert run(store, query) == [("", "SE", 6), ("", "", 1), ("", "US", 1), ("pro", "SE", 1)]
    assert result_columns(query) == ("properties.plan", "country", "events")


# ---------------------------------------------------------------------------- filters

# (field, values, sessions matched) per operator, on the sessions grain.
OPERATOR_CASES: dict[FilterOperator, tuple[Dimension, tuple[Any, ...], int]] = {
    FilterOperator.IS: (Dimension.COUNTRY, ("SE",), 2),
    FilterOperator.IS_NOT: (Dimension.COUNTRY, ("SE",), 1),
    FilterOperator.CONTAINS: (Dimension.BROWSER, ("FIRE",), 1),
    FilterOperator.DOES_NOT_CONTAIN: (Dimension.BROWSER, ("fire",), 2),
    FilterOperator.STARTS_WITH: (Dimension.REFERRER_NAME, ("goo",), 1),
    FilterOperator.ENDS_WITH: (Dimension.CITY, ("HOLM",), 1),
    FilterOperator.REGEX: (Dimension.ENTRY_PATH, ("^/b",), 1),
    FilterOperator.IS_NULL: (Dimension.REFERRER_NAME, (), 1),
    FilterOperator.IS_NOT_NULL: (Dimension.REFERRER_NAME, (), 2),
    FilterOperator.GT: (Dimension.BROWSER_VERSION, (120,), 1),
    FilterOperator.LT: (Dimension.BROWSER_VERSION, ("120",), 1),
    FilterOperator.GTE: (Dimension.BROWSER_VERSION, (120,), 2),
    FilterOperator.LTE: (Dimension.BROWSER_VERSION, (120.0,), 2),
}


def test_operator_table_covers_every_operator() -> None:
    assert set(OPERATOR_CASES) == set(FilterOperator)


@pytest.mark.parametrize("op", list(FilterOperator))
def test_each_filter_operator(store: DuckDBStore, op: FilterOperator) -> None:
    field, values, expected = OPERATOR_CASES[op]
    assert run(store, q(Metric.SESSIONS, filters=(Filter(field, op, values),))) == [(expected,)]


def test_several_values_or_and_several_filters_and(store: DuckDBStore) -> None:
    assert run(
        store, q(Metric.SESSIONS, filters=(Filter(Dimension.COUNTRY, FilterOperator.IS, ("SE", "US")),))
    ) == [(3,)]
    both = (
        Filter(Dimension.BROWSER, FilterOperator.CONTAINS, ("fire", "chro")),
        Filter(Dimension.ENTRY_PATH, FilterOperator.IS, ("/",)),
    )
    assert run(store, q(Metric.SESSIONS, filters=both)) == [(2,)]


def test_property_filter_uses_events(store: DuckDBStore) -> None:
    query = q(
        Metric.EVENTS,
        Metric.SESSIONS,
        Metric.BOUNCE_RATE,
        filters=(Filter(Property("plan"), FilterOperator.IS, ("pro",)),),
    )
    assert choose_grain(query) is Grain.EVENTS
    assert run(store, query) == [(1, 1, 0.0)]


def test_session_only_filter_on_events_grain_sees_current_version_only(store: DuckDBStore) -> None:
    exit_home = Filter(Dimension.EXIT_PATH, FilterOperator.IS, ("/",))
    query = q(Metric.PAGEVIEWS, dimensions=(Dimension.PATH,), filters=(exit_home, SCREEN_VIEWS))
    assert run(store, query) == [("/", 1)]  # s2 only; s1 exited on "/" only in its cancelled version


def test_filter_values_are_bound_not_spliced(store: DuckDBStore) -> None:
    evil = "SE' OR '1'='1'); DROP TABLE events; --"
    evil_key = "plan'] IS NOT NULL OR 1=1; --"
    query = q(
        Metric.SESSIONS,
        dimensions=(Property(evil_key),),
        filters=(Filter(Dimension.COUNTRY, FilterOperator.IS, (evil,)),),
    )
    sql, params = compile_query(query, DUCKDB)
    assert evil not in sql and evil_key not in sql and "DROP" not in sql
    assert evil in params.values() and evil_key in params.values()
    assert store.fetch(sql, params) == []
    assert run(
        store, q(Metric.SESSIONS, filters=(Filter(Dimension.COUNTRY, FilterOperator.IS, (evil,)),))
    ) == [(0,)]
    assert run(store, q(Metric.SESSIONS)) == [(3,)]  # events and sessions still there


# ---------------------------------------------------------------------------- time series

SESSIONS_BY_INTERVAL: dict[Interval, list[tuple[datetime, int]]] = {
    Interval.MINUTE: [
        (JAN1 + timedelta(hours=10), 1),
        (JAN1 + timedelta(hours=11), 1),
        (datetime(2025, 1, 2, 9), 1),
    ],
    Interval.HOUR: [
        (JAN1 + timedelta(hours=10), 1),
        (JAN1 + timedelta(hours=11), 1),
        (datetime(2025, 1, 2, 9), 1),
    ],
    Interval.DAY: [(JAN1, 2), (datetime(2025, 1, 2), 1)],
    Interval.WEEK: [(datetime(2024, 12, 30), 3)],  # Monday
    Interval.MONTH: [(JAN1, 3)],
}


@pytest.mark.parametrize("interval", list(Interval))
def test_each_interval(store: DuckDBStore, interval: Interval) -> None:
    assert run(store, q(Metric.SESSIONS, interval=interval)) == SESSIONS_BY_INTERVAL[interval]


def test_series_buckets_in_the_range_time_zone(store: DuckDBStore) -> None:
    # Honolulu is UTC-10: s3 (09:00 UTC on Jan 2) is still Jan 1 there.
    hawaii = DateRange(start=datetime(2024, 12, 31), end=datetime(2025, 1, 3), timezone="Pacific/Honolulu")
    assert run(store, q(Metric.SESSIONS, range=hawaii, interval=Interval.DAY)) == [(JAN1, 3)]


def test_event_series(store: DuckDBStore) -> None:
    query = q(Metric.PAGEVIEWS, Metric.BOUNCE_RATE, interval=Interval.HOUR, filters=(SCREEN_VIEWS,))
    assert run(store, query) == [
        (JAN1 + timedelta(hours=10), 3, 0.0),
        (JAN1 + timedelta(hours=11), 1, 100.0),
        (datetime(2025, 1, 2, 9), 2, 0.0),
    ]


def test_series_of_the_top_dimension_values(store: DuckDBStore) -> None:
    query = q(Metric.SESSIONS, dimensions=(Dimension.COUNTRY,), interval=Interval.DAY, limit=1)
    assert run(store, query) == [("SE", JAN1, 1), ("SE", datetime(2025, 1, 2), 1)]
    assert result_columns(query) == ("country", "time", "sessions")
    by_path = q(
        Metric.PAGEVIEWS,
        dimensions=(Dimension.PATH,),
        interval=Interval.DAY,
        limit=1,
        filters=(SCREEN_VIEWS,),
    )
    assert run(store, by_path) == [("/", JAN1, 2)]


# ---------------------------------------------------------------------------- order, limit, offset


def test_order_limit_offset(store: DuckDBStore) -> None:
    ascending = q(
        Metric.SESSIONS, dimensions=(Dimension.COUNTRY,), order=(Order(Metric.SESSIONS, descending=False),)
    )
    assert run(store, ascending) == [("US", 1), ("SE", 2)]
    assert run(store, q(Metric.SESSIONS, dimensions=(Dimension.PATH,), limit=2, offset=1)) == [
        ("/pricing", 2),
        ("/blog", 1),
    ]
    by_second = q(
        Metric.SESSIONS,
        Metric.BOUNCE_RATE,
        dimensions=(Dimension.COUNTRY,),
        order=(Order(Metric.BOUNCE_RATE),),
    )
    assert run(store, by_second) == [("US", 1, 100.0), ("SE", 2, 0.0)]


# ---------------------------------------------------------------------------- errors and helpers


def test_invalid_queries_raise_query_error() -> None:
    with pytest.raises(QueryError, match="entry_path is a session column"):
        compile_query(q(Metric.SESSIONS, dimensions=(Dimension.ENTRY_PATH, Dimension.PATH)), DUCKDB)
    with pytest.raises(QueryError, match="needs numbers"):
        compile_query(
            q(Metric.SESSIONS, filters=(Filter(Dimension.OS_VERSION, FilterOperator.GT, ("ten",)),)), DUCKDB
        )
    with pytest.raises(QueryError, match="needs at least one value"):
        compile_query(q(Metric.SESSIONS, filters=(Filter(Dimension.OS, FilterOperator.IS, ()),)), DUCKDB)
    with pytest.raises(QueryError, match="unknown time zone"):
        DateRange(start=JAN1, end=datetime(2025, 1, 2), timezone="Mars/Olympus")
    with pytest.raises(QueryError, match="start must be before end"):
        DateRange(start=JAN1, end=JAN1)
    with pytest.raises(QueryError, match="at least one"):
        q()
    with pytest.raises(QueryError, match="order: bounce_rate is not among the metrics"):
        q(Metric.SESSIONS, order=(Order(Metric.BOUNCE_RATE),))
    with pytest.raises(QueryError, match="limit"):
        q(Metric.SESSIONS, limit=0)


def test_query_decodes_from_json() -> None:
    raw = (
        b'{"project_id": "proj", "range": {"start": "2025-01-01T00:00:00", "end": "2025-01-03T00:00:00",'
        b' "timezone": "Europe/Stockholm"}, "metrics": ["sessions"],'
        b' "dimensions": ["country", {"key": "plan"}],'
        b' "filters": [{"field": "path", "operator": "startsWith", "values": ["/blog", 1]}],'
        b' "interval": "day"}'
    )
    query = msgspec.json.decode(raw, type=Query)
    assert query.dimensions == (Dimension.COUNTRY, Property("plan"))
    assert query.filters == (Filter(Dimension.PATH, FilterOperator.STARTS_WITH, ("/blog", 1)),)
    assert query.range.utc_bounds() == (datetime(2024, 12, 31, 23), datetime(2025, 1, 2, 23))
    with pytest.raises(msgspec.ValidationError, match="unknown time zone"):
        msgspec.json.decode(raw.replace(b"Europe/Stockholm", b"Nowhere/Land"), type=Query)


def test_parse_field_and_default_interval() -> None:
    assert parse_field("referrerName") is Dimension.REFERRER_NAME
    assert parse_field("utm_source") is Dimension.UTM_SOURCE
    assert parse_field("properties.__query.utm_source") == Property("__query.utm_source")
    with pytest.raises(QueryError, match="unknown field 'nope'"):
        parse_field("nope")
    assert default_interval(JAN1, JAN1 + timedelta(hours=5)) is Interval.HOUR
    assert default_interval(JAN1, JAN1 + timedelta(days=30)) is Interval.DAY
    assert default_interval(JAN1, JAN1 + timedelta(days=180)) is Interval.WEEK
    assert default_interval(JAN1, JAN1 + timedelta(days=365)) is Interval.MONTH
