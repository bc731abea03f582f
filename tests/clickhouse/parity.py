"""One event set, two stores: the visits of tests/reports_support.py (plus an identified visitor) tracked
once by the real ingest Pipeline, and every resulting request's rows written through the spool and
store writer of two live servers, one on DuckDB and one on ClickHouse. Ids (event uuids, session ids)
are random per run, so tracking once and writing the same rows twice is what makes results comparable
value for value.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from openpanel_lite.ingest.geo import GeoLookup
from openpanel_lite.ingest.identity import Salts
from openpanel_lite.ingest.pipeline import Pipeline, RequestInfo, Rows
from openpanel_lite.ingest.profiles import ProfileBook
from openpanel_lite.ingest.schemas import IdentifyPayload, TrackPayload
from openpanel_lite.ingest.sessions import SessionTracker
from openpanel_lite.ingest.state_loaders import profile_loader
from openpanel_lite.meta.projects import Project
from tests.harness import LiveServer
from tests.reports_support import EVENTS, V1, at, write_geo

# V1 identifies as user-1 during S1 (03-10 10:03): its earlier anonymous page views are linked.
IDENTIFY_AT = at(10, 10, 3)
PROFILE_ID = "user-1"


def seed_both(servers: list[tuple[LiveServer, Project]], geo_path: Path) -> None:
    """Track the event set once and write each request's rows to every server's ingest sink."""
    first_server = servers[0][0]
    tracker = SessionTracker()
    pipeline = Pipeline(
        tracker=tracker,
        profiles=ProfileBook(profile_loader(first_server.runtime.store)),
        geo=GeoLookup([write_geo(geo_path)]),
        salts=Salts(current="salt-1", previous="salt-1"),
    )

    def write(rows: Rows) -> None:
        for server, _ in servers:
            server.call(server.runtime.ingest.sink.write(rows, None))

    async def run() -> None:
        project = servers[0][1]
        for when, visitor, (name, props) in EVENTS:
            ended, _ = tracker.reap(int(when.timestamp() * 1000))
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
            profile = None
            if visitor is V1 and when == IDENTIFY_AT:
                identify = IdentifyPayload(
                    PROFILE_ID, "Ada", "Lovelace", "ada@example.com", None, {"plan": "pro"}
                )
                await pipeline.identify(req, identify, rows)
                profile = PROFILE_ID
            pipeline.track(
                req, TrackPayload(name=name, properties=props, profile_id=profile, groups=()), rows
            )
            write(rows)
        last = EVENTS[-1][0] + timedelta(hours=1)
        write(Rows(events=tracker.reap(int(last.timestamp() * 1000))[0]))

    try:
        asyncio.run(run())
    finally:
        assert pipeline.geo is not None
        pipeline.geo.close()
    for server, _ in servers:
        server.flush()
