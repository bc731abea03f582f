"""A fixed event set for report tests, pushed through the real ingest pipeline with a fixed clock.

Each event is tracked by an ingest Pipeline (user agent, geo, referrer, device id, sessions) at its own
time, the session reaper runs at that time too, and the rows go through the live server's spool and
store writer (so the writer's data version moves as in production).

Visits (UTC), with the numbers the tests expect worked out in test_reports_overview.py:
  S6 V4 03-08 03:00  /pricing (from duckduckgo)                        bounce
  S5 V2 03-09 12:00  /  12:10 /blog                                    600 s
  S7 V4 03-10 02:00  /                                                 bounce
  S1 V1 03-10 10:00  / (from google)  10:02 /pricing  10:03 signup{plan:pro}  10:05 /docs   300 s
  S2 V2 03-10 23:30  /blog?utm_source=newsletter&utm_medium=email      bounce
  S3 V3 03-11 06:00  / (from twitter)  06:01:30 /pricing  06:01:40 revenue 4999  06:02 link_out  120 s
  S4 V1 03-11 18:00  /docs                                             bounce
  S8 V3 03-12 03:00  /pricing  03:00:30 /docs                          30 s
V1, V4: Chrome on Windows in London (GB); V2: iPhone in Hanover (DE); V3: Firefox on Linux in Los Angeles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from openpanel_lite.ingest.geo import GeoLookup
from openpanel_lite.ingest.identity import Salts
from openpanel_lite.ingest.pipeline import Pipeline, RequestInfo, Rows
from openpanel_lite.ingest.profiles import ProfileBook
from openpanel_lite.ingest.schemas import TrackPayload
from openpanel_lite.ingest.sessions import SessionTracker
from openpanel_lite.ingest.state_loaders import profile_loader
from openpanel_lite.meta.projects import Project
from tests.harness import LiveServer
from tests.ingest_support import CHROME_WIN

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SITE = "https://example.com"


@dataclass(frozen=True)
class Visitor:
    ip: str
    user_agent: str


V1 = Visitor("81.2.69.10", CHROME_WIN)
V2 = Visitor("2a02:2e0:3fe:1001:302::", IPHONE)
V3 = Visitor("12.34.56.78", FIREFOX_LINUX)
V4 = Visitor("81.2.69.20", CHROME_WIN)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, second, tzinfo=UTC)


def view(path: str, referrer: str | None = None) -> tuple[str, dict[str, Any]]:
    props: dict[str, Any] = {"__path": SITE + path}
    if referrer:
        props["__referrer"] = referrer
    return "screen_view", props


def event(name: str, path: str, **props: Any) -> tuple[str, dict[str, Any]]:
    return name, {"__path": SITE + path, **props}


# (time, visitor, (name, properties)) in time order.
EVENTS: list[tuple[datetime, Visitor, tuple[str, dict[str, Any]]]] = [
    (at(8, 3), V4, view("/pricing", "https://duckduckgo.com/")),
    (at(9, 12), V2, view("/")),
    (at(9, 12, 10), V2, view("/blog")),
    (at(10, 2), V4, view("/")),
    (at(10, 10), V1, view("/", "https://www.google.com/")),
    (at(10, 10, 2), V1, view("/pricing")),
    (at(10, 10, 3), V1, event("signup", "/pricing", plan="pro")),
    (at(10, 10, 5), V1, view("/docs")),
    (at(10, 23, 30), V2, view("/blog?utm_source=newsletter&utm_medium=email")),
    (at(11, 6), V3, view("/", "https://twitter.com/")),
    (at(11, 6, 1, 30), V3, view("/pricing")),
    (at(11, 6, 1, 40), V3, event("revenue", "/pricing", __revenue=4999)),
    (at(11, 6, 2), V3, event("link_out", "/pricing", href="https://github.com/acme")),
    (at(11, 18), V1, view("/docs")),
    (at(12, 3), V3, view("/pricing")),
    (at(12, 3, 0, 30), V3, view("/docs")),
]


def write_geo(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Test-City", languages=["en"])
    places = [
        ("81.2.69.0/24", "GB", "England", "London", 51.5, -0.12),
        ("2a02:2e0::/32", "DE", "Lower Saxony", "Hanover", 52.37, 9.74),
        ("12.0.0.0/8", "US", "California", "Los Angeles", 34.05, -118.24),
    ]
    for cidr, country, region, city, lat, lon in places:
        writer.insert_network(
            IPSet([cidr]),
            {"country_code": country, "state1": region, "city": city, "latitude": lat, "longitude": lon},
        )
    writer.to_db_file(str(path))
    return path


def seed(server: LiveServer, project: Project, geo_path: Path) -> None:
    """Track EVENTS for `project` and write them (with session_end events) into the store."""
    tracker = SessionTracker()
    pipeline = Pipeline(
        tracker=tracker,
        profiles=ProfileBook(profile_loader(server.runtime.store)),
        geo=GeoLookup([write_geo(geo_path)]),
        salts=Salts(current="salt-1", previous="salt-1"),
    )
    sink = server.runtime.ingest.sink
    try:
        for when, visitor, (name, props) in EVENTS:
            ended, _ = tracker.reap(int(when.timestamp() * 1000))  # the reaper, at the event's time
            rows = Rows(events=ended)
            req = RequestInfo(
                project=project,
                ip=visitor.ip,
                user_agent=visitor.user_agent,
                headers={},
                secret_verified=True,
                sdk_name="web",
                sdk_version="1.4.1",
                received_at=when,
            )
            pipeline.track(req, TrackPayload(name=name, properties=props, profile_id=None, groups=()), rows)
            server.call(sink.write(rows, None))
        last = EVENTS[-1][0] + timedelta(hours=1)
        server.call(sink.write(Rows(events=tracker.reap(int(last.timestamp() * 1000))[0]), None))
    finally:
        assert pipeline.geo is not None
        pipeline.geo.close()
    server.flush()
