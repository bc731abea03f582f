"""POST /track over real HTTP on 127.0.0.1: wire contract, enrichment, sessions, profiles, auth, bots."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from openpanel_lite.ingest import identity
from openpanel_lite.meta import salts as salts_mod
from tests.harness import LiveServer
from tests.ingest_support import CHROME_WIN, HANOVER_IP, LONDON_IP, Site, events, screen_view

SDK_HEADERS = "content-type,openpanel-client-id,openpanel-sdk-name,openpanel-sdk-version"


def test_sdk_screen_view_is_enriched_and_starts_a_session(server: LiveServer, site: Site) -> None:
    reply = site.track(screen_view())
    salts = salts_mod.get_salts(server.runtime.meta)
    device = identity.device_id(CHROME_WIN, LONDON_IP, site.project.id, salts.current)
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    body = reply.json()
    assert body["deviceId"] == device
    start, view = events(server)
    assert body["sessionId"] == view["session_id"] == start["session_id"]
    assert view == {
        "name": "screen_view",
        "path": "/pricing",
        "origin": "https://example.com",
        "referrer": "https://www.google.com",
        # utm_source wins for the name; the unknown source has no type, so the referrer's is kept.
        "referrer_name": "newsletter",
        "referrer_type": "search",
        "properties": {
            "__title": "Pricing – Acme",
            "__query.utm_source": "newsletter",
            "__query.utm_medium": "email",
            "__hash": "#plans",
        },
        "country": "GB",
        "city": "London",
        "region": "England",
        "browser": "Chrome",
        "os": "Windows",
        "device": "desktop",
        "sdk_name": "web",
        "sdk_version": "1.4.1",
        "device_id": device,
        "session_id": body["sessionId"],
        "profile_id": device,
    }
    assert start["name"] == "session_start" and start["path"] == "/pricing"
    sessions = server.rows(
        "SELECT id, sign, version, entry_path, utm_source, referrer_name, country FROM sessions"
    )
    assert sessions == [(body["sessionId"], 1, 1, "/pricing", "newsletter", "newsletter", "GB")]
    profiles = server.rows("SELECT id, is_external, properties['country'] FROM profiles")
    assert profiles == [(device, False, "GB")]


def test_second_event_extends_the_session(server: LiveServer, site: Site) -> None:
    first = site.track(screen_view()).json()
    second = site.track(
        {
            "type": "track",
            "payload": {
                "name": "signup_clicked",
                "properties": {"plan": "pro", "__path": "https://example.com/pricing"},
            },
        }
    ).json()
    assert second == first
    # Whatever the batching, version 1 is cancelled and version 2 is the live state.
    rows = server.rows(
        "SELECT version, sum(sign), max(event_count), max(screen_view_count) FROM sessions "
        "GROUP BY version ORDER BY version"
    )
    assert [r for r in rows if r[1] != 0] == [(2, 1, 1, 1)]
    custom = events(server, "name = 'signup_clicked'")[0]
    assert custom["properties"] == {"plan": "pro"}
    # The event inherits the session's entry referrer (a later page's own referrer is internal).
    assert (custom["referrer_name"], custom["session_id"]) == ("newsletter", first["sessionId"])


@pytest.mark.parametrize(
    ("payload", "message", "error"),
    [
        (
            {"type": "track", "payload": {}},
            "body/payload/name Invalid input: expected string, received undefined",
            "Error",
        ),
        (
            {"type": "track", "payload": {"name": "session_start"}},
            "body/payload/name Event name cannot be one of the reserved names: session_start, session_end",
            "Error",
        ),
        (
            {"type": "nope", "payload": {}},
            "body/type Invalid discriminator value. Expected 'track' | 'identify' | 'increment' | "
            "'decrement' | 'alias' | 'replay' | 'group' | 'assign_group'",
            "Error",
        ),
        (
            {"type": "identify", "payload": {"profileId": "u1", "email": "not-an-email"}},
            "body/payload/email Invalid email address",
            "Error",
        ),
        (
            {"type": "track", "payload": {"name": "../../etc/passwd"}},
            "body/payload/name Event name contains blocked content",
            "Error",
        ),
        (
            {"type": "alias", "payload": {"profileId": "a", "alias": "b"}},
            "Alias is not supported",
            "Bad Request",
        ),
    ],
)
def test_validation_errors_match_upstream(
    site: Site, payload: dict[str, Any], message: str, error: str
) -> None:
    reply = site.track(payload)
    assert reply.status == 400
    assert reply.json() == {"status": 400, "error": error, "message": message}


def test_malformed_json_and_oversized_body(server: LiveServer, site: Site) -> None:
    reply = server.request("POST", "/track", "{not json", site.headers())
    assert (reply.status, reply.json()) == (
        400,
        {
            "status": 400,
            "error": "FastifyError",
            "message": "Body is not valid JSON but content-type is set to 'application/json'",
        },
    )
    big = {"type": "track", "payload": {"name": "x", "properties": {"blob": "a" * 70_000}}}
    assert site.track(big).status == 413
    deep = "[" * 100_000 + "]" * 100_000
    assert server.request("POST", "/track", deep, site.headers()).status == 413
    nested = '{"type":"track","payload":{"name":"x","properties":' + "[" * 5000 + "]" * 5000 + "}}"
    assert server.request("POST", "/track", nested, site.headers()).status == 400
    assert events(server) == []


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"openpanel-client-id": ""}, "Ingestion: Missing client id"),
        ({"openpanel-client-id": "not-a-uuid"}, "Ingestion: Client ID must be a valid UUIDv4"),
        ({"openpanel-client-id": str(uuid.UUID(int=1))}, "Ingestion: Invalid client id"),
        ({"Origin": "https://evil.com"}, "Ingestion: Invalid cors or secret"),
        ({"Origin": "https://example.com.evil.net"}, "Ingestion: Invalid cors or secret"),
        ({"Origin": "https://evilexample.com"}, "Ingestion: Invalid cors or secret"),
        ({"Origin": "null"}, "Ingestion: Invalid cors or secret"),
        ({"Origin": ""}, "Ingestion: Invalid cors or secret"),
        (
            {"Origin": "https://evil.com", "openpanel-client-secret": "sec_wrong"},
            "Ingestion: Invalid cors or secret",
        ),
    ],
)
def test_auth_failures_are_401_text(
    server: LiveServer, site: Site, headers: dict[str, str], message: str
) -> None:
    reply = site.track(screen_view(), **headers)
    assert reply.status == 401
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text == message
    assert events(server) == []


def test_subdomain_origin_accepted(server: LiveServer, site: Site) -> None:
    assert site.track(screen_view(), Origin="https://shop.example.com").status == 200
    assert site.track(screen_view(), Origin="https://www.example.com").status == 200


def test_revenue_needs_a_verified_secret(server: LiveServer, site: Site) -> None:
    payload = {
        "type": "track",
        "payload": {"name": "revenue", "properties": {"__revenue": 1999, "currency": "USD"}},
    }
    reply = site.track(payload)
    assert (reply.status, reply.text) == (
        401,
        "Ingestion: Revenue tracking is not allowed without a client secret",
    )
    # A wrong secret does not count, even from an allowed origin.
    reply = site.track(payload, **{"openpanel-client-secret": "sec_00000000000000000000"})
    assert (reply.status, reply.text) == (
        401,
        "Ingestion: Revenue tracking is not allowed without a client secret",
    )
    reply = site.track(payload, Origin="", **{"openpanel-client-secret": site.secret})
    assert reply.status == 200
    [row] = server.rows("SELECT revenue, properties FROM events WHERE name = 'revenue'")
    assert row == (1999, {"currency": "USD"})


def test_preflight(server: LiveServer) -> None:
    reply = server.request(
        "OPTIONS",
        "/track",
        headers={
            "Origin": "http://127.0.0.1:8901",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": SDK_HEADERS,
        },
    )
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "*"
    assert reply.headers["access-control-allow-methods"] == "GET,HEAD,POST"
    assert reply.headers["access-control-allow-headers"] == SDK_HEADERS
    assert reply.headers["access-control-max-age"] == "604800"
    bad = server.request("OPTIONS", "/track")
    assert (bad.status, bad.text) == (400, "Invalid Preflight Request")


def test_identify_then_track_carries_profile(server: LiveServer, site: Site) -> None:
    site.track(screen_view())
    reply = site.track(
        {
            "type": "identify",
            "payload": {
                "profileId": "user_1",
                "email": "a@b.co",
                "firstName": "Ada",
                "properties": {"tier": "gold"},
            },
        }
    )
    assert reply.status == 200
    site.track({"type": "track", "payload": {"name": "after_identify", "profileId": "user_1"}})
    [profile] = server.rows(
        "SELECT id, is_external, email, first_name, properties FROM profiles WHERE id = 'user_1'"
    )
    assert profile[:4] == ("user_1", True, "a@b.co", "Ada")
    assert (
        profile[4]["tier"] == "gold" and profile[4]["country"] == "GB" and profile[4]["browser"] == "Chrome"
    )
    [after] = events(server, "name = 'after_identify'")
    assert after["profile_id"] == "user_1"
    [latest] = server.rows("SELECT profile_id FROM sessions WHERE sign = 1 ORDER BY version DESC LIMIT 1")
    assert latest == ("user_1",)
    # Beyond upstream: the visit's earlier anonymous events now carry the profile too.
    assert [(e["name"], e["profile_id"]) for e in events(server)] == [
        ("session_start", "user_1"),
        ("screen_view", "user_1"),
        ("after_identify", "user_1"),
    ]


def test_increment_and_decrement(server: LiveServer, site: Site) -> None:
    missing = site.track({"type": "increment", "payload": {"profileId": "nobody", "property": "visits"}})
    assert (missing.status, missing.json()) == (404, {"status": 404, "message": "Profile not found"})
    site.track(
        {"type": "identify", "payload": {"profileId": "u2", "properties": {"name": "x", "visits": "2"}}}
    )
    assert (
        site.track({"type": "increment", "payload": {"profileId": "u2", "property": "visits"}}).status == 200
    )
    site.track({"type": "increment", "payload": {"profileId": "u2", "property": "visits", "value": 5}})
    site.track({"type": "decrement", "payload": {"profileId": "u2", "property": "visits", "value": 3}})
    [(visits,)] = server.rows(
        "SELECT properties['visits'] FROM profiles WHERE id = 'u2' ORDER BY last_seen_at DESC, "
        "cast(properties['visits'] AS INT) ASC LIMIT 1"
    )
    assert visits == "5"
    nan = site.track({"type": "increment", "payload": {"profileId": "u2", "property": "name"}})
    assert (nan.status, nan.json()) == (400, {"status": 400, "message": "Property value is not a number"})


def test_groups(server: LiveServer, site: Site) -> None:
    site.track(
        {
            "type": "group",
            "payload": {"id": "org_acme", "type": "company", "name": "Acme", "properties": {"plan": "pro"}},
        }
    )
    site.track({"type": "assign_group", "payload": {"groupIds": ["org_acme"], "profileId": "user_1"}})
    assert server.rows("SELECT id, type, name, properties FROM groups") == [
        ("org_acme", "company", "Acme", {"plan": "pro"})
    ]
    assert server.rows("SELECT id, groups FROM profiles WHERE id = 'user_1'") == [("user_1", ["org_acme"])]


def test_bots_get_202_and_an_events_bots_row(server: LiveServer, site: Site) -> None:
    ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    reply = site.track(screen_view("https://example.com/about"), **{"User-Agent": ua})
    assert reply.status == 202
    assert reply.json()["bot"]["name"] == "Googlebot"
    assert server.rows("SELECT name, path FROM events_bots") == [("Googlebot", "https://example.com/about")]
    assert events(server) == []
    # A verified secret skips the bot check (a server SDK may use any UA).
    ok = site.track(screen_view(), Origin="", **{"User-Agent": ua, "openpanel-client-secret": site.secret})
    assert ok.status == 200


def test_soft_bot_signals_are_marked_not_dropped(server: LiveServer, site: Site) -> None:
    site.track(screen_view(), **{"sec-ch-ua": "", "Sec-Fetch-Mode": "", "Accept-Language": ""})
    [view] = events(server, "name = 'screen_view'")
    assert view["properties"]["__bot_reasons"] == (
        "header:missing_sec_ch_ua,header:missing_sec_fetch,header:missing_accept_language"
    )
    assert "__bot" not in view["properties"]


def test_duplicates_are_answered_with_json_and_stored_once(server: LiveServer, site: Site) -> None:
    # Upstream's window is 100 ms; widened so a busy test machine cannot split the pair.
    server.runtime.ingest.service.duplicate_window_s = 10.0
    payload = screen_view()
    first = site.track(payload)
    again = site.track(payload)
    assert again.status == 200 and again.json() == first.json()
    assert len(events(server, "name = 'screen_view'")) == 1
    # Retries after the window (the SDK waits 500 ms+) are caught by the event id alone.
    server.runtime.ingest.service.duplicate_window_s = 0.0
    event_id = str(uuid.uuid4())
    retry = {"type": "track", "payload": {"name": "buy", "properties": {"__eventId": event_id}}}
    for _ in range(3):
        assert site.track(retry).status == 200
    assert server.rows("SELECT CAST(id AS VARCHAR), properties FROM events WHERE name = 'buy'") == [
        (event_id, {})
    ]


def test_server_sdk_ip_override_needs_the_secret(server: LiveServer, site: Site) -> None:
    payload = {"type": "track", "payload": {"name": "api_call", "properties": {"__ip": HANOVER_IP}}}
    site.track(payload, **{"User-Agent": "node", "Origin": "", "openpanel-client-secret": site.secret})
    site.track(payload, **{"openpanel-client-ip": HANOVER_IP})  # browser: header and __ip ignored
    rows = server.rows(
        "SELECT country, city, properties, device FROM events WHERE name = 'api_call' ORDER BY country"
    )
    assert rows == [("DE", "Hanover", {}, "server"), ("GB", "London", {}, "desktop")]


def test_no_raw_ip_reaches_disk(server: LiveServer, site: Site) -> None:
    site.track(screen_view())
    site.track({"type": "identify", "payload": {"profileId": "u9", "properties": {"x": "y"}}})
    server.flush()
    server.call(server.runtime.ingest.writer.checkpoint())
    blob = b"".join(p.read_bytes() for p in server.cfg.data_dir.rglob("*") if p.is_file())
    assert LONDON_IP.encode() not in blob
    assert site.secret.encode() not in blob


def test_device_id_endpoint(server: LiveServer, site: Site) -> None:
    salts = salts_mod.get_salts(server.runtime.meta)
    device = identity.device_id(CHROME_WIN, LONDON_IP, site.project.id, salts.current)
    before = server.request("GET", "/track/device-id", headers=site.headers())
    assert before.json() == {
        "deviceId": device,
        "sessionId": "",
        "message": "No session exists for this device id",
    }
    sid = site.track(screen_view()).json()["sessionId"]
    after = server.request("GET", "/track/device-id", headers=site.headers())
    assert after.json() == {
        "deviceId": device,
        "sessionId": sid,
        "message": "current session exists for this device id",
    }


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({str(i): i for i in range(101)}, "body/payload/properties Too many properties: at most 100"),
        (
            {"k" * 65: "v"},
            "body/payload/properties Property key longer than 64 bytes: 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk'…",
        ),
        ({"v": "é" * 1025}, "body/payload/properties/v Property value longer than 2048 bytes"),
        (
            {"a": {"b": [{"c": "x" * 2049}]}},
            "body/payload/properties/a/b/0/c Property value longer than 2048 bytes",
        ),
    ],
)
def test_property_limits_are_400_naming_the_limit(
    server: LiveServer, site: Site, properties: dict[str, Any], message: str
) -> None:
    reply = site.track({"type": "track", "payload": {"name": "limits", "properties": properties}})
    assert (reply.status, reply.json()) == (400, {"status": 400, "error": "Error", "message": message})
    assert events(server, "name = 'limits'") == []


def test_json_depth_limit(server: LiveServer, site: Site) -> None:
    deep: Any = "x"
    for _ in range(32):
        deep = {"k": deep}
    ok = site.track({"type": "track", "payload": {"name": "deep", "properties": deep}})
    assert ok.status == 200
    too_deep = site.track({"type": "track", "payload": {"name": "deep", "properties": {"k": deep}}})
    assert too_deep.status == 400
    assert too_deep.json()["message"].endswith("Too deep: properties may nest at most 32 levels")
