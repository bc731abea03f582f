"""S14 privacy-salt: advance the clock 49 h through the salt code's clock injection (rotate_salts takes
`now`; the server's midnight job does exactly `pipeline.salts = _salts(meta, now)`): afterwards no salt
older than 48 h exists, and the same visitor (same UA, IP and origin) gets a new device id each day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from openpanel_lite.ingest import setup
from openpanel_lite.meta import salts as salts_mod
from openpanel_lite.meta.clock import from_ms, to_ms
from tests.harness import LiveServer
from tests.ingest_support import Site


def _rotate(server: LiveServer, now: datetime) -> None:
    """What the midnight job does at `now`, on the server's own loop-side state."""
    server.runtime.ingest.pipeline.salts = setup._salts(server.runtime.meta, now)


def _device(site: Site, marker: str, props: dict[str, object] | None = None) -> str:
    body = {"type": "track", "payload": {"name": marker, "properties": props or {}}}
    reply = site.track(body)
    assert reply.status == 200, reply.text
    device_id: str = reply.json()["deviceId"]
    [(stored,)] = site.server.rows("SELECT device_id FROM events WHERE name = $n", {"n": marker})
    assert stored == device_id
    return device_id


def _salt_ages(server: LiveServer, now: datetime) -> list[timedelta]:
    """Ages at the metadata DB's resolution (created_at is whole milliseconds)."""
    rows = server.runtime.meta.query("SELECT created_at FROM salts")
    return [from_ms(to_ms(now)) - from_ms(int(r[0])) for r in rows]


def test_salts_older_than_48_hours_are_gone_and_ids_change_across_days(
    server: LiveServer, site: Site
) -> None:
    start = datetime.now(UTC)
    day0 = _device(site, "day0")
    assert _device(site, "day0 again") == day0  # same visitor, same day, same id

    # Day 1 (+25 h): the live visit keeps its id across midnight (previous salt), as upstream.
    _rotate(server, start + timedelta(hours=25))
    assert len(server.runtime.meta.query("SELECT salt FROM salts")) == 2

    # Day 2 (+49 h): the salt day0 was hashed with is older than 48 h and must be gone.
    later = start + timedelta(hours=49)
    _rotate(server, later)
    ages = _salt_ages(server, later)
    assert ages and max(ages) <= timedelta(hours=48), ages
    day2 = _device(site, "day2")
    assert day2 != day0  # the visitor cannot be linked across the 48 h line

    # Day 4 (+97 h): again a new id; only today's salt and yesterday's at most are kept.
    much_later = start + timedelta(hours=97)
    _rotate(server, much_later)
    assert max(_salt_ages(server, much_later)) <= timedelta(hours=48)
    day4 = _device(site, "day4")
    # The wall clock did not move, so the day-2 visit is still "live" and keeps its id (previous
    # salt, by design); day 0 stays unlinkable.
    assert day4 == day2 and day4 != day0


def test_rotation_is_idempotent_and_prunes_after_downtime(server: LiveServer) -> None:
    meta = server.runtime.meta
    now = datetime.now(UTC)
    first = salts_mod.rotate_salts(meta, now + timedelta(hours=30))
    again = salts_mod.rotate_salts(meta, now + timedelta(hours=30, minutes=5))
    assert first == again  # a restart on the same day makes no new salt
    # A week offline: everything older than 48 h goes, current == previous until the next day.
    after = salts_mod.rotate_salts(meta, now + timedelta(days=8))
    assert after.current == after.previous
    assert len(meta.query("SELECT salt FROM salts")) == 1
    assert max(_salt_ages(server, now + timedelta(days=8))) <= timedelta(hours=48)
