"""One regression per root cause found by the DuckDB-vs-ClickHouse differential test
(tests/test_parity_hypothesis.py): fixed inputs on which the two engines' own functions disagree, run
through the compiled reports on a DuckDB store and a ClickHouse store (chdb, or the server of
OPENPANEL_TEST_CLICKHOUSE_URL), each asserting the same exact answer on both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from fractions import Fraction
from itertools import count
from typing import Any

import pytest

from openpanel_lite.ingest.page_visits import page_views_of
from openpanel_lite.ingest.view_times import durations_of
from openpanel_lite.query import (
    DateRange,
    Dimension,
    Filter,
    FilterOperator,
    Metric,
    Order,
    Property,
    Query,
    QueryError,
)
from openpanel_lite.reports.event_list import list_events
from openpanel_lite.storage import EventStore
from openpanel_lite.storage.clickhouse import ClickHouseStore
from openpanel_lite.storage.clickhouse_schema import MIGRATIONS as CH_MIGRATIONS
from openpanel_lite.storage.dialects import CLICKHOUSE, DUCKDB, ParamKind
from openpanel_lite.storage.duckdb import DuckDBStore
from openpanel_lite.storage.duckdb import migrations as duckdb_migrations
from openpanel_lite.storage.rows import EventRow, SessionRow, WriteBatch
from openpanel_lite.storage.sql import compile_query
from openpanel_lite.storage.sql_list import EventListQuery
from openpanel_lite.storage.sql_vocabulary import _ratio
from tests.clickhouse.engine import drop_database, engine_url, new_database

P = "proj"
T0 = datetime(2025, 3, 10, 12, 0)
DAY = DateRange(start=datetime(2025, 3, 10), end=datetime(2025, 3, 11))
_ids = count(1)

# Property values, each on its own event whose path names it, so a filter's matches read as paths.
NUMBERS = {
    "one": "1",
    "spaced": " 2 ",
    "tab": "\t3",
    "underscore": "1_000",
    "nan": "nan",
    "inf": "inf",
    "neg-inf": "-inf",
    "exp": "1e3",
    "hex": "0x10",
    "half": ".5",
    "plus": "+5",
    "huge": "1e999",
    "word": "abc",
    "empty": "",
}
WORDS = {
    "dotted-capital-i": "İstanbul",
    "capital-i": "ISTANBUL",
    "final-sigma-capital": "ΟΔΟΣ",
    "final-sigma-small": "οδος",
    "mid-sigma": "ΣΑΣ ΑΣ",
    "newline": "x\ny",
    "x": "xzy",
}


def _event(path: str, key: str, value: str, at: datetime = T0) -> EventRow:
    return EventRow(
        id=uuid.UUID(int=next(_ids)),
        name="click",
        project_id=P,
        session_id="s",
        profile_id="u",
        path=f"/{path}",
        properties={key: value},
        created_at=at,
    )


def _batch() -> WriteBatch:
    events = [_event(path, "n", value) for path, value in NUMBERS.items()]
    events += [_event(path, "w", value) for path, value in WORDS.items()]
    # Milliseconds are what the store keeps; range bounds may carry microseconds.
    events.append(_event("ms", "t", "", T0 + timedelta(hours=1, milliseconds=123)))
    # 40 sessions, 107 page views: 2.675 views per session, an exact half at the third decimal.
    sessions = [
        SessionRow(
            id=f"r{i}",
            project_id="ratio",
            profile_id=f"v{i}",
            created_at=T0,
            ended_at=T0,
            screen_view_count=3 if i < 27 else 2,
        )
        for i in range(40)
    ]
    # Page views for time on page: session a views /a and /b at the same millisecond, /a 10 s later,
    # /c a minute after that; session b views /a once.
    for session, offset_s, path in (
        ("a", 0, "/a"),
        ("a", 0, "/b"),
        ("a", 10, "/a"),
        ("a", 70, "/c"),
        ("b", 0, "/a"),
    ):
        at = T0 + timedelta(seconds=offset_s)
        events.append(
            EventRow(
                id=uuid.UUID(int=next(_ids)),
                name="screen_view",
                project_id="views",
                session_id=session,
                path=path,
                created_at=at,
            )
        )
    # Arriving out of order: /a at 10 s comes last, so the rows for /a and /b at 0 s are re-timed.
    arrival = [*events[:-3], events[-2], events[-1], events[-3]]
    return WriteBatch(
        events=events,
        sessions=sessions,
        view_durations=durations_of(arrival),
        page_views=page_views_of(arrival),
    )


@pytest.fixture(scope="module")
def stores() -> Iterator[tuple[EventStore, EventStore]]:
    database = new_database()
    duck = DuckDBStore(":memory:", memory_limit="256MiB", threads=1)
    duck.migrate()
    ch = ClickHouseStore(engine_url(), database=database, node="dialects")
    ch.migrate()
    try:
        for store in (duck, ch):
            store.append(_batch())
        yield duck, ch
    finally:
        duck.close()
        ch.close()
        drop_database(engine_url(), database)


def _paths(store: EventStore, q: EventListQuery) -> list[str]:
    page = list_events(store, q)
    return sorted(str(r["path"]).lstrip("/") for r in page.rows)


def matches(stores: tuple[EventStore, EventStore], *filters: Filter, **kw: Any) -> list[str]:
    """The paths of the events `filters` keep, asserted equal on both stores."""
    q = EventListQuery(project_id=P, filters=filters, columns=("path",), limit=100, **kw)
    duck, ch = (_paths(s, q) for s in stores)
    assert duck == ch
    return duck


def prop(key: str, op: FilterOperator, *values: str) -> Filter:
    return Filter(Property(key), op, values)


# ---------------------------------------------------------------------------- numbers in strings


def test_number_filters_read_plain_decimals_only(stores: tuple[EventStore, EventStore]) -> None:
    # DuckDB's TRY_CAST read '\t3' and '1_000'; ClickHouse's toFloat64OrNull did not. Both read
    # 'nan', and DuckDB orders NaN above every number ('nan' > 0 was true there, false in ClickHouse).
    assert matches(stores, prop("n", FilterOperator.GT, "0")) == [
        "exp",
        "half",
        "huge",
        "one",
        "plus",
        "spaced",
    ]
    assert matches(stores, prop("n", FilterOperator.LT, "0")) == []
    assert matches(stores, prop("n", FilterOperator.GTE, "1"), prop("n", FilterOperator.LTE, "2")) == [
        "one",
        "spaced",
    ]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_non_finite_filter_values_are_refused(value: str) -> None:
    q = Query(
        project_id=P, range=DAY, metrics=(Metric.EVENTS,), filters=(prop("n", FilterOperator.GT, value),)
    )
    for dialect in (DUCKDB, CLICKHOUSE):
        with pytest.raises(QueryError, match="needs numbers"):
            compile_query(q, dialect)


# ---------------------------------------------------------------------------- case folding


def test_case_insensitive_tests_fold_dotted_i_and_final_sigma(stores: tuple[EventStore, EventStore]) -> None:
    # ClickHouse lowered 'İ' to 'i' + U+0307 and a word-final 'Σ' to 'ς'; DuckDB to 'i' and 'σ'.
    assert matches(stores, prop("w", FilterOperator.CONTAINS, "istanbul")) == [
        "capital-i",
        "dotted-capital-i",
    ]
    assert matches(stores, prop("w", FilterOperator.STARTS_WITH, "İST")) == ["capital-i", "dotted-capital-i"]
    assert matches(stores, prop("w", FilterOperator.ENDS_WITH, "ΔΟς")) == [
        "final-sigma-capital",
        "final-sigma-small",
    ]
    assert matches(stores, prop("w", FilterOperator.CONTAINS, "σ ασ")) == ["mid-sigma"]
    assert matches(
        stores, prop("w", FilterOperator.DOES_NOT_CONTAIN, "οσ"), prop("w", FilterOperator.IS_NOT_NULL)
    ) == [
        "capital-i",
        "dotted-capital-i",
        "mid-sigma",
        "newline",
        "x",
    ]


# ---------------------------------------------------------------------------- regular expressions


def test_regex_dot_does_not_match_a_newline(stores: tuple[EventStore, EventStore]) -> None:
    # ClickHouse's match() sets RE2's dot_nl: 'x.y' matched 'x\ny' there and not in DuckDB.
    assert matches(stores, prop("w", FilterOperator.REGEX, "x.y")) == ["x"]
    assert matches(stores, prop("w", FilterOperator.REGEX, "(?s)x.y")) == ["newline", "x"]
    assert matches(stores, prop("w", FilterOperator.REGEX, "^y")) == []
    assert matches(stores, prop("w", FilterOperator.REGEX, "(?m)^y$")) == ["newline"]


# ---------------------------------------------------------------------------- timestamp bounds


def test_microsecond_range_bounds_compare_exactly(stores: tuple[EventStore, EventStore]) -> None:
    # The event is at 13:00:00.123. ClickHouse cut a DateTime64(3) bound of .123456 to .123, so
    # `created_at < end` dropped the event that DuckDB kept.
    at = T0 + timedelta(hours=1, milliseconds=123)
    kept = matches(stores, start=at - timedelta(minutes=1), end=at + timedelta(microseconds=456))
    assert kept == ["ms"]
    assert matches(stores, start=at + timedelta(microseconds=1), end=at + timedelta(minutes=1)) == []
    range_ = DateRange(start=at - timedelta(minutes=1), end=at + timedelta(microseconds=1))
    clicks = Filter(Dimension.NAME, FilterOperator.IS, ("click",))  # an event-grain query
    q = Query(project_id=P, range=range_, metrics=(Metric.EVENTS,), filters=(clicks,))
    results = [s.fetch(*compile_query(q, s.dialect)) for s in stores]
    assert results[0] == results[1] == [(1,)]


# ---------------------------------------------------------------------------- rounding


@pytest.mark.parametrize(
    ("num", "den"),
    [(107, 40), (1, 8), (1, 3), (2, 3), (1, 200), (1, 201), (3, 400), (0, 7), (0, 0), (5, 0), (123457, 1000)],
)
def test_ratios_round_half_away_from_zero_on_the_exact_value(
    stores: tuple[EventStore, EventStore], num: int, den: int
) -> None:
    expected = 0.0 if den == 0 else float(int(Fraction(num, den) * 100 + Fraction(1, 2))) / 100
    got = []
    for s in stores:
        n, d = (s.dialect.param(name, ParamKind.INT) for name in "nd")
        got.append(s.fetch(f"SELECT {_ratio(s.dialect, n, d)}", {"n": num, "d": den}))
    assert got[0] == got[1] == [(expected,)]


def test_views_per_session_of_a_half_rounds_up(stores: tuple[EventStore, EventStore]) -> None:
    # 107 / 40 = 2.675. DuckDB's round(107 / 40, 2) gives 2.67 (the double is just below 2.675),
    # ClickHouse's float emulation 2.68: the exact answer is 2.68, now on both.
    q = Query(
        project_id="ratio", range=DAY, metrics=(Metric.SESSIONS, Metric.PAGEVIEWS, Metric.VIEWS_PER_SESSION)
    )
    results = [s.fetch(*compile_query(q, s.dialect)) for s in stores]
    assert results[0] == results[1] == [(40, 107, 2.68)]


# ---------------------------------------------------------------------------- time on page


def test_time_on_page_is_the_same_in_both_engines(stores: tuple[EventStore, EventStore]) -> None:
    # Views at the same millisecond share the next later view (no tie-break for the engines to
    # disagree on): /a and /b at 0 s both run to 10 s; /a at 10 s runs to 70 s; the last views
    # have no time.
    views = Filter(Dimension.NAME, FilterOperator.IS, ("screen_view",))
    q = Query(
        project_id="views",
        range=DAY,
        metrics=(Metric.PAGEVIEWS, Metric.AVG_TIME_ON_PAGE),
        dimensions=(Dimension.PATH,),
        filters=(views,),
        order=(Order(Metric.PAGEVIEWS), Order(Metric.AVG_TIME_ON_PAGE)),
    )
    results = [s.fetch(*compile_query(q, s.dialect)) for s in stores]
    assert results[0] == results[1] == [("/a", 3, 35.0), ("/b", 1, 10.0), ("/c", 1, 0.0)]


def _backfill_select(store: EventStore) -> str:
    """The SELECT of the migration that times views stored before the time-on-page table existed."""
    if isinstance(store, DuckDBStore):
        sql = next(text for _, name, text in duckdb_migrations() if "view_durations" in name)
        return sql.split("INSERT INTO view_durations\n", 1)[1].strip().rstrip(";")
    assert isinstance(store, ClickHouseStore)
    return (
        next(m for m in CH_MIGRATIONS if m.name == "view_durations")
        .statements(store.layout)[-1]
        .split("\n", 1)[1]
    )


def test_the_migration_times_stored_views_as_ingest_does(stores: tuple[EventStore, EventStore]) -> None:
    # Net signed rows per view from ingest's rule (out-of-order arrival included) == the window the
    # migration runs over views stored before the table existed, on both engines.
    expected: dict[tuple[str, str, str], int] = {}
    for r in _batch().view_durations:
        key = (r.session_id, r.path, r.created_at.isoformat())
        expected[key] = expected.get(key, 0) + r.sign * r.duration
    expected = {k: v for k, v in expected.items() if v}
    for store in stores:
        rows = store.fetch(_backfill_select(store), {})
        got = {
            (str(r[1]), str(r[3]), r[4].replace(tzinfo=None).isoformat()): int(r[5])
            for r in rows
            if r[0] == "views"
        }
        assert got == expected, store.dialect.name
    assert sorted(expected.values()) == [10_000, 10_000, 60_000]
