"""Legacy v0 endpoints, project event filters and the in-process bus, over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from openpanel_lite.meta import projects
from openpanel_lite.meta.project_filters import EventFilter, EventPropertyFilter
from tests.harness import LiveServer
from tests.ingest_support import Site, events, screen_view


def test_legacy_event_and_profile_endpoints(server: LiveServer, site: Site) -> None:
    reply = server.request(
        "POST",
        "/event",
        {
            "name": "legacy_click",
            "properties": {"__path": "https://example.com/old", "k": "v"},
            "timestamp": "x",
        },
        site.headers(),
    )
    assert (reply.status, reply.text) == (202, "ok")
    [row] = events(server, "name = 'legacy_click'")
    assert (row["path"], row["properties"]) == ("/old", {"k": "v"})

    reply = server.request("POST", "/profile", {"profileId": "old_user", "firstName": "Old"}, site.headers())
    assert (reply.status, reply.text) == (202, "old_user")
    assert server.rows("SELECT first_name FROM profiles WHERE id = 'old_user'") == [("Old",)]

    inc = server.request(
        "POST", "/profile/increment", {"profileId": "old_user", "property": "n", "value": 2}, site.headers()
    )
    assert (inc.status, inc.text) == (202, "old_user")
    dec = server.request(
        "POST", "/profile/decrement", {"profileId": "old_user", "property": "n", "value": 1}, site.headers()
    )
    assert dec.status == 202
    [(n,)] = server.rows(
        "SELECT properties['n'] FROM profiles WHERE id = 'old_user' ORDER BY last_seen_at DESC, "
        "length(properties['n']) LIMIT 1"
    )
    assert n == "1"
    missing = server.request(
        "POST", "/profile/increment", {"profileId": "ghost", "property": "n"}, site.headers()
    )
    assert (missing.status, missing.text) == (404, "Not found")
    server.request("POST", "/profile", {"profileId": "word", "properties": {"n": "abc"}}, site.headers())
    nan = server.request("POST", "/profile/increment", {"profileId": "word", "property": "n"}, site.headers())
    assert (nan.status, nan.text) == (400, "Not number")
    unauth = server.request("POST", "/event", {"name": "x"}, site.headers(Origin="https://evil.com"))
    assert (unauth.status, unauth.text) == (401, "Ingestion: Invalid cors or secret")


def test_project_event_filter_drops_silently(server: LiveServer, site: Site) -> None:
    projects.update_project(
        server.runtime.meta,
        site.project.id,
        filters=[
            EventFilter(
                name="debug",
                filters=(EventPropertyFilter(name="env", operator="is", value=("dev", "test")),),
            )
        ],
    )
    server.runtime.ingest.auth.invalidate()
    for env in ("dev", "prod", "test"):
        reply = site.track({"type": "track", "payload": {"name": "debug", "properties": {"env": env}}})
        assert reply.status == 200
    assert [e["properties"]["env"] for e in events(server, "name = 'debug'")] == ["prod"]


def test_accepted_events_are_published_on_the_bus(server: LiveServer, site: Site) -> None:
    bus = server.runtime.ingest.bus

    async def subscribe() -> object:
        return bus.subscribe(site.project.id)

    sub = server.call(subscribe())
    site.track(screen_view())

    async def take(n: int) -> list[str]:
        return [(await asyncio.wait_for(sub.get(), 5)).name for _ in range(n)]  # type: ignore[attr-defined]

    assert server.call(take(2)) == ["session_start", "screen_view"]


def test_data_version_moves_with_each_flush_of_the_project(server: LiveServer, site: Site) -> None:
    writer = server.runtime.ingest.writer
    assert writer.data_version(site.project.id) == 0
    site.track(screen_view())
    server.flush()
    first = writer.data_version(site.project.id)
    assert first >= 1
    server.flush()  # nothing new: no bump
    assert writer.data_version(site.project.id) == first
    site.track({"type": "track", "payload": {"name": "again"}})
    server.flush()
    assert writer.data_version(site.project.id) == first + 1
    assert writer.data_version("other-project") == 0


def test_overload_is_shed_with_503_and_retry_after(tmp_path: Path) -> None:
    # A disk floor above the disk's size: the spool refuses, and /track sheds before reading the body.
    from openpanel_lite.config import load
    from tests.ingest_support import live_config

    base = live_config(tmp_path)
    cfg = load(
        None,
        {},
        {
            "data.dir": base.data.dir,
            "server.port": base.server.port,
            "geoip.auto_download": False,
            "ingest.min_free_disk_mb": 10**9,
        },
    )
    srv = LiveServer(cfg)
    try:
        shed_site = Site(srv)
        reply = shed_site.track(screen_view())
        assert reply.status == 503
        assert reply.headers["retry-after"] == "2"
        assert reply.headers["access-control-allow-origin"] == "*"
        assert reply.json() == {
            "status": 503,
            "error": "Service Unavailable",
            "message": "Ingest is overloaded; retry later",
        }
        assert srv.rows("SELECT count(*) FROM events") == [(0,)]
    finally:
        srv.stop()


def test_a_retry_of_a_refused_request_is_not_a_duplicate(server: LiveServer, site: Site) -> None:
    """The 100 ms content lock only covers requests that were kept: a resend of one answered 503
    (here: the spool refuses at append, after the route's shed check passed) must be stored."""
    import json

    from openpanel_lite.ingest.headers import LowerCaseHeaders
    from openpanel_lite.ingest.service import RequestMeta

    ingest = server.runtime.ingest
    service, spool = ingest.service, ingest.spool
    service.duplicate_window_s = 60.0  # every resend below lands inside the window, on any machine
    body = json.dumps(screen_view("https://example.com/refused")).encode()
    headers = LowerCaseHeaders({k.lower(): v for k, v in site.headers().items()})
    meta = RequestMeta(peer="127.0.0.1", headers=headers)

    spool._min_free_ratio = 1.0  # noqa: SLF001 - no disk is 100 % free: the append is refused
    spool._disk_checked_at = -1.0  # noqa: SLF001 - re-read the disk now
    refused = server.call(service.track(body, meta))
    assert (refused.status, refused.headers) == (503, {"retry-after": "30"})

    spool._min_free_ratio = 0.0  # noqa: SLF001
    spool._disk_checked_at = -1.0  # noqa: SLF001
    kept = server.call(service.track(body, meta))
    duplicate = server.call(service.track(body, meta))  # a true duplicate of the kept one
    assert kept.status == 200 and duplicate.status == 200
    assert kept.body == duplicate.body  # same deviceId and sessionId
    server.flush()
    assert [e["path"] for e in events(server) if e["name"] == "screen_view"] == ["/refused"]
