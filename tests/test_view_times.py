"""Time on page decided at ingest (openpanel_lite/ingest/view_times.py): a view's time runs to the
next later view of its session, whatever order the views arrive in, across a restart too."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from openpanel_lite.ingest import page_visits, view_times
from openpanel_lite.ingest.page_visits import page_views_of
from openpanel_lite.ingest.sessions import SessionTracker
from openpanel_lite.ingest.view_times import ViewTimeline, durations_of
from openpanel_lite.query import DateRange, Dimension, Filter, FilterOperator, Metric, Query
from openpanel_lite.storage.duckdb import DuckDBStore
from openpanel_lite.storage.rows import EventRow, ViewDurationRow, WriteBatch
from openpanel_lite.storage.sql import compile_query
from tests.harness import LiveServer
from tests.ingest_support import Site, live_config

T0 = datetime(2026, 6, 8, 12, 0, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def net(rows: list[ViewDurationRow]) -> Counter[tuple[str, str, datetime, int]]:
    """Rows netted per (session, path, time, duration): what sum(sign) reads, cancelled pairs gone."""
    out: Counter[tuple[str, str, datetime, int]] = Counter()
    for r in rows:
        out[(r.session_id, r.path, r.created_at, r.duration)] += r.sign
    assert all(v >= 0 for v in out.values()), out
    return +out


def by_rule(views: list[tuple[str, int, str]]) -> Counter[tuple[str, str, datetime, int]]:
    """The definition: each view runs to the first later view of its session; the last has no row."""
    out: Counter[tuple[str, str, datetime, int]] = Counter()
    for session, ms, path in views:
        later = [m for s, m, _ in views if s == session and m > ms]
        if later:
            out[(session, path, at(ms), min(later) - ms)] += 1
    return out


def view(session: str, ms: int, path: str) -> EventRow:
    return EventRow(
        id=uuid.uuid4(), name="screen_view", project_id="p", session_id=session, path=path, created_at=at(ms)
    )


def test_in_order_views_each_run_to_the_next() -> None:
    t = ViewTimeline("p", "s")
    assert t.add(0, "o", "/a", at(0)) == []
    [first] = t.add(10_000, "o", "/b", at(10_000))
    assert (first.path, first.created_at, first.duration, first.sign) == ("/a", at(0), 10_000, 1)
    [second] = t.add(70_000, "o", "/c", at(70_000))
    assert (second.path, second.duration, second.sign) == ("/b", 60_000, 1)


def test_a_view_arriving_between_two_re_times_the_earlier_one() -> None:
    t = ViewTimeline("p", "s")
    t.add(0, "o", "/a", at(0))
    t.add(60_000, "o", "/c", at(60_000))
    rows = t.add(20_000, "o", "/b", at(20_000))
    assert [(r.path, r.duration, r.sign) for r in rows] == [
        ("/a", 60_000, -1),
        ("/a", 20_000, 1),
        ("/b", 40_000, 1),
    ]


def test_views_at_the_same_millisecond_share_their_next_one() -> None:
    t = ViewTimeline("p", "s")
    t.add(0, "o", "/a", at(0))
    t.add(5_000, "o", "/c", at(5_000))
    [row] = t.add(0, "o", "/b", at(0))
    assert (row.path, row.duration) == ("/b", 5_000)
    # A view before them runs to that millisecond; nothing else changes.
    [row] = t.add(-1_000, "o", "/z", at(-1_000))
    assert (row.path, row.duration) == ("/z", 1_000)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["s1", "s2"]), st.integers(0, 12), st.sampled_from(["/a", "/b", "/c"])),
        max_size=25,
    ),
    st.randoms(use_true_random=False),
)
def test_any_arrival_order_nets_to_the_rule(views: list[tuple[str, int, str]], rnd: object) -> None:
    # Few distinct times, so ties and out-of-order arrivals are common.
    arrival = list(views)
    rnd.shuffle(arrival)  # type: ignore[attr-defined]
    rows = durations_of(view(s, ms * 1000, p) for s, ms, p in arrival)
    assert net(rows) == by_rule([(s, ms * 1000, p) for s, ms, p in views])


def test_past_the_cap_older_views_are_forgotten_without_error() -> None:
    cap = view_times.MAX_VIEW_TIMES
    t = ViewTimeline("p", "s")
    rows = [r for ms in range(cap + 10) for r in t.add(ms * 1000, "o", f"/{ms}", at(ms * 1000))]
    assert len(rows) == cap + 9 and len(t.times) == cap and t.forgot
    # Older than every remembered view: no row (its neighbours were forgotten).
    assert t.add(-5_000, "o", "/old", at(-5_000)) == []
    # Inside the remembered span: timed as usual.
    assert [(r.path, r.duration, r.sign) for r in t.add(200_500, "o", "/mid", at(200_500))] == [
        ("/200", 1_000, -1),
        ("/200", 500, 1),
        ("/mid", 500, 1),
    ]


def test_tracker_times_the_session_views_and_a_new_session_starts_afresh() -> None:
    tracker = SessionTracker(timeout_ms=30 * 60_000)
    dev = "d" * 32

    def send(ms: int, path: str) -> list[tuple[str, int]]:
        e = EventRow(
            id=uuid.uuid4(),
            name="screen_view",
            project_id="p",
            device_id=dev,
            profile_id=dev,
            path=path,
            created_at=at(ms),
        )
        out = tracker.client_event(e, T0_MS + ms)
        return [(r.path, r.duration) for r in out.durations]

    assert send(0, "/a") == []
    assert send(30_000, "/b") == [("/a", 30_000)]
    # A custom event is no view: no row.
    custom = EventRow(id=uuid.uuid4(), name="signup", project_id="p", device_id=dev, created_at=at(40_000))
    assert tracker.client_event(custom, T0_MS + 40_000).durations == []
    # 31 minutes later: a new session, whose first view does not time the old session's last one.
    assert send(30_000 + 31 * 60_000, "/c") == []


def test_time_on_page_carries_on_across_a_restart(tmp_path: Path) -> None:
    cfg = live_config(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    times = [now - timedelta(minutes=5), now - timedelta(minutes=4), now - timedelta(minutes=2)]

    def send(server: LiveServer, site: Site, when: datetime, path: str) -> None:
        payload = {
            "type": "track",
            "payload": {
                "name": "screen_view",
                "properties": {"__path": f"https://example.com{path}", "__timestamp": when.isoformat()},
            },
        }
        assert site.track(payload).status == 200

    server = LiveServer(cfg)
    try:
        site = Site(server)
        send(server, site, times[0], "/a")
        send(server, site, times[1], "/b")
        server.flush()
    finally:
        server.stop()
    server = LiveServer(cfg)
    try:
        site.server = server
        send(server, site, times[2], "/a")
        server.flush()
        rows = server.rows("SELECT path, duration, sign FROM view_durations ORDER BY created_at")
        pages = server.rows("SELECT path, previous_at, sign FROM page_views ORDER BY created_at")
    finally:
        server.stop()
    assert rows == [("/a", 60_000, 1), ("/b", 120_000, 1)]
    # The second view of /a after the restart links to the first one, from before it.
    epoch = datetime(1970, 1, 1)
    assert pages == [("/a", epoch, 1), ("/b", epoch, 1), ("/a", times[0].replace(tzinfo=None), 1)]


def test_a_page_time_runs_to_the_next_view_even_after_the_range(tmp_path: Path) -> None:
    # Session s views /a at 23:58 and /b at 00:01 the next day; t views /a at 10:00 and /a at 10:00:30.
    # The first day's Pages: /a averages (180 s + 30 s) / 2; the /a at 10:00:30 is t's last view.
    # A country filter keeps t's views only; /b's one view is after the range; a card (no key) agrees.
    day = datetime(2026, 6, 8)
    views = [
        view("s", 0, "/a"),
        view("s", 180_000, "/b"),
        view("t", 0, "/a"),
        view("t", 30_000, "/a"),
    ]
    late = day + timedelta(hours=23, minutes=58)
    early = day + timedelta(hours=10)
    events = [
        msgspec.structs.replace(views[0], created_at=late.replace(tzinfo=UTC), country="SE"),
        msgspec.structs.replace(
            views[1], created_at=(late + timedelta(minutes=3)).replace(tzinfo=UTC), country="SE"
        ),
        msgspec.structs.replace(views[2], created_at=early.replace(tzinfo=UTC), country="DE"),
        msgspec.structs.replace(
            views[3], created_at=(early + timedelta(seconds=30)).replace(tzinfo=UTC), country="DE"
        ),
    ]
    store = DuckDBStore(tmp_path / "events.duckdb", memory_limit="256MiB", threads=1)
    try:
        store.migrate()
        store.append(
            WriteBatch(events=events, view_durations=durations_of(events), page_views=page_views_of(events))
        )
        first_day = DateRange(start=day, end=day + timedelta(days=1))

        def pages(*filters: Filter) -> list[tuple[object, ...]]:
            q = Query(
                project_id="p",
                range=first_day,
                metrics=(Metric.PAGEVIEWS, Metric.AVG_TIME_ON_PAGE),
                dimensions=(Dimension.PATH,),
                filters=(Filter(Dimension.NAME, FilterOperator.IS, ("screen_view",)), *filters),
            )
            return store.fetch(*compile_query(q, store.dialect))

        assert pages() == [("/a", 3, 105.0)]
        assert pages(Filter(Dimension.COUNTRY, FilterOperator.IS, ("DE",))) == [("/a", 2, 30.0)]
        assert pages(Filter(Dimension.PATH, FilterOperator.IS, ("/b",))) == []
        q = Query(project_id="p", range=first_day, metrics=(Metric.AVG_TIME_ON_PAGE,))
        assert store.fetch(*compile_query(q, store.dialect)) == [(105.0,)]
    finally:
        store.close()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["s1", "s2", ""]), st.integers(0, 12), st.sampled_from(["/a", "/b"])),
        max_size=25,
    ),
    st.randoms(use_true_random=False),
    st.integers(0, 13),
    st.integers(0, 13),
)
def test_pages_rows_count_each_session_once_per_page_in_any_range(
    views: list[tuple[str, int, str]], rnd: object, lo: int, hi: int
) -> None:
    # Whatever the arrival order: per page, sum(sign) over the range's rows = its views there, and
    # the rows with previous_at < start = the sessions (not '') that viewed it there.
    arrival = list(views)
    rnd.shuffle(arrival)  # type: ignore[attr-defined]
    rows = page_views_of(view(s, ms * 1000, p) for s, ms, p in arrival)
    start, end = at(lo * 1000), at(hi * 1000)
    for page in ("/a", "/b"):
        in_range = [r for r in rows if r.path == page and start <= r.created_at < end]
        pageviews = sum(r.sign for r in in_range)
        sessions = sum(r.sign for r in in_range if r.session_id and r.previous_at < start)
        expected = [(s, ms) for s, ms, p in views if p == page and lo <= ms < hi]
        assert pageviews == len(expected)
        assert sessions == len({s for s, _ in expected if s})


def test_past_the_cap_a_pages_oldest_views_are_forgotten_without_error() -> None:
    cap = page_visits.MAX_PAGE_VIEWS
    visits = page_visits.PageVisits("p", "s")
    rows = [r for ms in range(cap + 3) for r in visits.add(view("s", ms * 1000, "/a"), ms * 1000)]
    assert len(rows) == cap + 3 and sum(r.previous_at == rows[0].previous_at for r in rows) == 1
    # Older than every remembered view of the page: no row; a newer one links to the latest.
    assert visits.add(view("s", -1000, "/a"), -1000) == []
    [row] = visits.add(view("s", (cap + 5) * 1000, "/a"), (cap + 5) * 1000)
    assert row.previous_at == at((cap + 2) * 1000)
