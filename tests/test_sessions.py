"""Session lifecycle (openpanel-facts §3.4/§3.5): start, extend, boundary, reap, server events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from openpanel_lite.ingest import identity
from openpanel_lite.ingest.sessions import SessionTracker
from openpanel_lite.storage.rows import EventRow

T0 = datetime(2026, 6, 8, 12, 0, 10, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
DEV = "6e42516ff4ab941df7c82964cd4f4b41"


def ev(name: str = "screen_view", at: datetime = T0, **kw: object) -> EventRow:
    base: dict[str, object] = dict(
        id=uuid.uuid4(), name=name, project_id="proj-1", device_id=DEV, profile_id=DEV, created_at=at
    )
    base.update(kw)
    return EventRow(**base)  # type: ignore[arg-type]


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def test_first_event_starts_a_session_with_session_start_100ms_earlier() -> None:
    t = SessionTracker()
    first = ev(
        path="/pricing",
        origin="https://example.com",
        referrer="https://www.google.com/search",
        referrer_name="Google",
        referrer_type="search",
        country="SE",
        browser="Chrome",
        properties={"__query.utm_source": "newsletter", "__query.utm_medium": "email", "plan": "pro"},
    )
    out = t.client_event(first, T0_MS)
    expected_sid = identity.session_id("proj-1", DEV, T0_MS)
    assert out.kind == "new"
    assert out.event.session_id == expected_sid
    [start] = out.events
    assert start.name == "session_start" and start.id != first.id
    assert start.created_at == T0 - timedelta(milliseconds=100)
    assert (start.path, start.properties, start.session_id) == ("/pricing", first.properties, expected_sid)
    [row] = out.sessions
    assert (row.id, row.sign, row.version, row.is_bounce) == (expected_sid, 1, 1, True)
    assert (row.entry_path, row.exit_path, row.entry_origin) == (
        "/pricing",
        "/pricing",
        "https://example.com",
    )
    assert (row.screen_view_count, row.event_count, row.duration) == (1, 0, 0)
    assert (row.utm_source, row.utm_medium, row.utm_campaign) == ("newsletter", "email", "")
    assert (row.referrer_name, row.referrer_type, row.country, row.browser) == (
        "Google",
        "search",
        "SE",
        "Chrome",
    )
    assert row.profile_id == DEV


def test_extend_updates_exit_duration_bounce_and_inherits_referrer() -> None:
    t = SessionTracker()
    t.client_event(
        ev(path="/", referrer="https://google.com", referrer_name="Google", referrer_type="search"), T0_MS
    )
    later = T0 + timedelta(seconds=42)
    out = t.client_event(
        ev(path="/docs", at=later, referrer="https://example.com/", referrer_name="x"), T0_MS + 42_000
    )
    assert out.kind == "extend" and out.events == []
    assert (out.event.referrer, out.event.referrer_name, out.event.referrer_type) == (
        "https://google.com",
        "Google",
        "search",
    )
    cancel, new = out.sessions
    assert (cancel.sign, cancel.version, cancel.exit_path) == (-1, 1, "/")
    assert (new.sign, new.version, new.exit_path, new.entry_path) == (1, 2, "/docs", "/")
    assert (new.duration, new.screen_view_count, new.is_bounce) == (42_000, 2, False)

    custom = t.client_event(
        ev("signup", at=later + timedelta(seconds=1), profile_id="user_1"), T0_MS + 43_000
    )
    c2 = custom.sessions[1]
    assert (c2.version, c2.event_count, c2.screen_view_count, c2.profile_id) == (3, 1, 2, "user_1")
    assert custom.event.session_id == new.id


def test_out_of_order_event_moves_entry_and_never_negative_duration() -> None:
    t = SessionTracker()
    t.client_event(ev(path="/b"), T0_MS)
    out = t.client_event(ev(path="/a", at=T0 - timedelta(seconds=5)), T0_MS + 1)
    row = out.sessions[1]
    assert (row.entry_path, row.exit_path, row.duration) == ("/a", "/b", 5_000)


def test_boundary_closes_old_session_and_starts_new_one() -> None:
    t = SessionTracker()
    first = t.client_event(ev(path="/", properties={"k": "v"}), T0_MS)
    old_id = first.event.session_id
    gap = T0 + timedelta(minutes=31)
    out = t.client_event(ev(path="/again", at=gap), T0_MS + 31 * 60_000)
    assert out.kind == "boundary"
    end, start = out.events
    assert (end.name, end.session_id, end.path, end.duration) == ("session_end", old_id, "/", 0)
    assert end.created_at == T0 + timedelta(seconds=1)
    assert end.properties == {"__bounce": "true"}
    assert start.name == "session_start" and start.session_id == out.event.session_id != old_id
    assert out.sessions[0].id == out.event.session_id and out.sessions[0].version == 1


def test_reaper_ends_sessions_after_timeout_of_wall_clock() -> None:
    t = SessionTracker(timeout_ms=60_000)
    t.client_event(ev(path="/x"), T0_MS)
    t.client_event(ev(path="/y", at=T0 + timedelta(seconds=10)), T0_MS + 10_000)
    assert t.reap(T0_MS + 70_000) == ([], [])
    ended, _ = t.reap(T0_MS + 70_001)
    [end] = ended
    assert (end.name, end.path, end.duration, end.properties) == (
        "session_end",
        "/y",
        10_000,
        {"__bounce": "false"},
    )
    assert len(t) == 0


def test_server_event_attaches_to_identified_profile_session() -> None:
    t = SessionTracker()
    browser = t.client_event(ev(path="/cart", profile_id="user_1", country="DE", browser="Firefox"), T0_MS)
    server = EventRow(
        id=uuid.uuid4(),
        name="purchase",
        project_id="proj-1",
        created_at=T0 + timedelta(seconds=5),
        device="server",
    )
    out = t.server_event(server, "user_1", T0_MS + 5_000)
    assert out.kind == "attached"
    assert (out.event.device_id, out.event.session_id) == (DEV, browser.event.session_id)
    assert (out.event.country, out.event.browser, out.event.path) == ("DE", "Firefox", "/cart")
    lonely = t.server_event(server, "user_2", T0_MS + 5_000)
    assert (lonely.event.device_id, lonely.event.session_id, lonely.event.profile_id) == ("", "", "user_2")


def test_live_session_and_session_id_for() -> None:
    t = SessionTracker()
    assert t.live_session("proj-1", DEV, T0_MS) is None
    assert t.session_id_for("proj-1", DEV, T0_MS) == identity.session_id("proj-1", DEV, T0_MS)
    out = t.client_event(ev(), T0_MS)
    assert t.live_session("proj-1", DEV, T0_MS + 1_800_000) == out.event.session_id
    assert t.live_session("proj-1", DEV, T0_MS + 1_800_001) is None
    assert t.live_checker("proj-1", T0_MS + 1000)(DEV) is True
    assert t.live_checker("proj-1", T0_MS + 1000)("other") is False


def test_revenue_adds_to_session() -> None:
    t = SessionTracker()
    t.client_event(ev(path="/"), T0_MS)
    out = t.client_event(ev("revenue", at=T0 + timedelta(seconds=1), revenue=1999), T0_MS + 1000)
    assert out.sessions[1].revenue == 1999.0
