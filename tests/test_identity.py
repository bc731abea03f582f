"""Device and session ids: OpenPanel's golden vectors (openpanel-facts §3.1, §3.3) and the salt rule."""

from __future__ import annotations

import string
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openpanel_lite.ingest.identity import (
    DeviceChoice,
    Salts,
    choose_device_id,
    device_id,
    resolve_device,
    sanitize_device_id_override,
    session_bucket,
    session_grace_ms,
    session_id,
)

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/148.0.0.0"
DEVICE_CURRENT = "6e42516ff4ab941df7c82964cd4f4b41"
DEVICE_PREVIOUS = "2fa3820a2b4ebe1f8179e771cb337083"
SALTS = Salts(current="salt-current", previous="salt-previous")
SESSION_BEFORE = "HajqCDFfuYleNipKr7DnYA"
SESSION_AFTER = "SbihssaI3CzUl04u4fR0Hw"


def utc_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_device_id_golden_vector() -> None:
    assert device_id(UA, "1.2.3.4", "proj-1", "salt-current") == DEVICE_CURRENT


def test_device_id_changes_with_every_input() -> None:
    assert device_id(UA, "1.2.3.4", "proj-1", "salt-previous") == DEVICE_PREVIOUS
    assert device_id("unknown/1.0", "", "proj-1", "salt-current") == "e10a4b0a8f9c90e18fcbd2df8c35368f"


def test_utc_ms_helper() -> None:
    assert utc_ms("2026-06-08T12:00:00.000Z") == 1_780_920_000_000


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2026-06-08T12:00:00.000Z", SESSION_BEFORE),
        ("2026-06-08T12:00:04.999Z", SESSION_BEFORE),
        ("2026-06-08T12:00:05.000Z", SESSION_AFTER),
        ("2026-06-08T12:15:00.000Z", SESSION_AFTER),
        ("2026-06-08T12:29:59.999Z", SESSION_AFTER),
        # The next bucket's grace period still belongs to this one.
        ("2026-06-08T12:30:04.999Z", SESSION_AFTER),
        ("2026-06-08T11:59:59.999Z", SESSION_BEFORE),
    ],
)
def test_session_id_golden_vectors(instant: str, expected: str) -> None:
    assert session_id("proj-1", DEVICE_CURRENT, utc_ms(instant)) == expected
    assert session_id("proj-1", DEVICE_CURRENT, utc_ms(instant), 1_800_000) == expected


def test_session_id_after_next_grace_is_new() -> None:
    after = session_id("proj-1", DEVICE_CURRENT, utc_ms("2026-06-08T12:30:05.000Z"))
    assert after == "tWnL1fa_0wpEOH9p7fkPaQ"
    assert after not in (SESSION_BEFORE, SESSION_AFTER)


def test_session_id_depends_on_project_and_device() -> None:
    t = utc_ms("2026-06-08T12:10:00.000Z")
    assert session_id("proj-2", DEVICE_CURRENT, t) != SESSION_AFTER
    assert session_id("proj-1", DEVICE_PREVIOUS, t) != SESSION_AFTER


@pytest.mark.parametrize(
    ("timeout_ms", "grace"),
    [(1_800_000, 5_000), (30_000, 5_000), (30_006, 5_000), (6_000, 1_000), (5, 0), (1, 0)],
)
def test_session_grace(timeout_ms: int, grace: int) -> None:
    assert session_grace_ms(timeout_ms) == grace


@pytest.mark.parametrize(
    ("event_ms", "bucket"),
    [(0, -1), (4_999, -1), (5_000, 0), (59_999, 0), (60_000, 0), (64_999, 0), (65_000, 1)],
)
def test_session_bucket_one_minute_window(event_ms: int, bucket: int) -> None:
    assert session_bucket(event_ms, 60_000) == bucket


@pytest.mark.parametrize("timeout_ms", [0, -1])
def test_session_bucket_rejects_non_positive_timeout(timeout_ms: int) -> None:
    with pytest.raises(ValueError, match="timeout_ms must be positive"):
        session_bucket(1_000, timeout_ms)


@given(
    event_ms=st.integers(min_value=0, max_value=4_102_444_800_000),
    timeout_ms=st.integers(min_value=1, max_value=86_400_000),
)
def test_session_id_shape_and_bucket_edges(event_ms: int, timeout_ms: int) -> None:
    sid = session_id("p", "d", event_ms, timeout_ms)
    assert len(sid) == 22
    assert set(sid) <= set(string.ascii_letters + string.digits + "-_")
    # The bucket starts `grace` ms after a multiple of the timeout and lasts exactly one timeout.
    bucket = session_bucket(event_ms, timeout_ms)
    start = bucket * timeout_ms + session_grace_ms(timeout_ms)
    assert start <= event_ms < start + timeout_ms


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "abc"),
        ("  abc\t\n", "abc"),
        ("x" * 64, "x" * 64),
        ("  " + "x" * 64 + "  ", "x" * 64),
        ("x" * 65, None),
        ("", None),
        ("   ", None),
        (None, None),
        (123, None),
        (["abc"], None),
        ({"id": "abc"}, None),
    ],
)
def test_sanitize_device_id_override(value: object, expected: str | None) -> None:
    assert sanitize_device_id_override(value) == expected


class LiveSessions:
    """A fake session store: the set of device ids with a live session, plus every lookup made."""

    def __init__(self, *live: str) -> None:
        self.live = set(live)
        self.asked: list[str] = []

    def __call__(self, device: str) -> bool:
        self.asked.append(device)
        return device in self.live


def test_no_live_session_uses_current_salt() -> None:
    live = LiveSessions()
    assert choose_device_id(UA, "1.2.3.4", "proj-1", SALTS, live) == DEVICE_CURRENT
    assert live.asked == [DEVICE_CURRENT, DEVICE_PREVIOUS]


def test_live_session_on_previous_salt_keeps_the_visit_across_midnight() -> None:
    live = LiveSessions(DEVICE_PREVIOUS)
    choice = resolve_device(UA, "1.2.3.4", "proj-1", SALTS, live)
    assert choice == DeviceChoice(DEVICE_PREVIOUS, "previous")


def test_current_salt_wins_when_both_are_live() -> None:
    live = LiveSessions(DEVICE_CURRENT, DEVICE_PREVIOUS)
    assert resolve_device(UA, "1.2.3.4", "proj-1", SALTS, live) == DeviceChoice(DEVICE_CURRENT, "current")
    assert live.asked == [DEVICE_CURRENT]


def test_new_visit_is_reported_as_new() -> None:
    choice = resolve_device(UA, "1.2.3.4", "proj-1", SALTS, LiveSessions("someone-else"))
    assert choice == DeviceChoice(DEVICE_CURRENT, "new")


def test_single_salt_store_asks_once() -> None:
    live = LiveSessions()
    same = Salts(current="salt-current", previous="salt-current")
    assert choose_device_id(UA, "1.2.3.4", "proj-1", same, live) == DEVICE_CURRENT
    assert live.asked == [DEVICE_CURRENT]


def test_override_replaces_the_hash_without_session_lookups() -> None:
    live = LiveSessions(DEVICE_PREVIOUS)
    choice = resolve_device(UA, "1.2.3.4", "proj-1", SALTS, live, override="  customer-42 ")
    assert choice == DeviceChoice("customer-42", "override")
    assert live.asked == []


@pytest.mark.parametrize("override", ["", "   ", "x" * 65, 42, None])
def test_invalid_override_is_ignored(override: object) -> None:
    live = LiveSessions(DEVICE_PREVIOUS)
    assert choose_device_id(UA, "1.2.3.4", "proj-1", SALTS, live, override=override) == DEVICE_PREVIOUS
