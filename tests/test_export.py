"""GET /export/events over real HTTP: auth, paging, includes, filters, rate limit (openpanel-facts §6.1)."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from openpanel_lite.meta import clients, projects
from tests.harness import LiveServer
from tests.ingest_support import Site, screen_view


def reader(server: LiveServer, site: Site, kind: str = "read") -> dict[str, str]:
    client, secret = clients.create_client(server.runtime.meta, site.project.id, type=kind)  # type: ignore[arg-type]
    return {"openpanel-client-id": client.id, "openpanel-client-secret": secret}


def export(server: LiveServer, headers: dict[str, str], **params: Any) -> Any:
    server.flush()
    return server.request(
        "GET", "/export/events?" + urllib.parse.urlencode(params, doseq=True), headers=headers
    )


def test_export_defaults_and_includes(server: LiveServer, site: Site) -> None:
    site.track(screen_view())
    site.track({"type": "track", "payload": {"name": "signup", "properties": {"plan": "pro"}}})
    headers = reader(server, site)
    reply = export(server, headers)
    assert reply.status == 200
    body = reply.json()
    assert body["meta"] == {"count": 3, "totalCount": 3, "pages": 1, "current": 1}
    names = [e["name"] for e in body["data"]]
    assert sorted(names) == ["screen_view", "session_start", "signup"]
    first = body["data"][0]
    assert set(first) == {
        "id", "name", "deviceId", "profileId", "sessionId", "projectId", "createdAt", "path",
        "duration", "city", "country", "os", "browser",
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["createdAt"])
    signup = next(e for e in body["data"] if e["name"] == "signup")
    assert (signup["projectId"], signup["city"], signup["country"], signup["browser"]) == (
        site.project.id,
        "London",
        "GB",
        "Chrome",
    )

    reply = export(server, headers, event="signup", includes="properties,referrerName,profile,meta")
    [only] = reply.json()["data"]
    assert only["properties"] == {"plan": "pro"}
    assert only["referrerName"] == "newsletter" and only["meta"] is None  # inherited from the session
    assert only["profile"]["id"] == only["profileId"] and only["profile"]["isExternal"] is False


def test_export_paging_filters_and_dates(server: LiveServer, site: Site) -> None:
    for i in range(5):
        site.track({"type": "track", "payload": {"name": "click", "properties": {"n": str(i)}}})
    headers = reader(server, site, "root")
    page2 = export(server, headers, event="click", limit=2, page=2).json()
    assert page2["meta"] == {"count": 2, "totalCount": 5, "pages": 3, "current": 2}
    filtered = export(
        server,
        headers,
        event="click",
        filters='[{"name":"properties.n","operator":"is","value":["1","3"]}]',
        includes="properties",
    ).json()
    assert sorted(e["properties"]["n"] for e in filtered["data"]) == ["1", "3"]
    none = export(server, headers, event="click", start="2001-01-01", end="2001-01-02").json()
    assert none["meta"]["totalCount"] == 0
    bad = export(server, headers, limit=1001)
    assert (bad.status, bad.json()["message"]) == (400, "limit must be between 1 and 1000")
    badf = export(server, headers, filters='[{"name":"country","operator":"explode","value":[]}]')
    assert badf.status == 400


def test_export_auth(server: LiveServer, site: Site) -> None:
    write = {"openpanel-client-id": site.client_id, "openpanel-client-secret": site.secret}
    reply = export(server, write)
    assert (reply.status, reply.json()["message"]) == (403, "Client is not allowed to export")
    wrong = {"openpanel-client-id": site.client_id, "openpanel-client-secret": "sec_nope"}
    assert export(server, wrong).json() == {
        "status": 401,
        "error": "Unauthorized",
        "message": "Export: Invalid client secret",
    }
    other = projects.create_project(server.runtime.meta, "Other", domain="other.example")
    read = reader(server, site)
    assert export(server, read, projectId=other.id).status == 403
    assert export(server, read, projectId="missing").status == 404


def test_export_rate_limit(server: LiveServer, site: Site) -> None:
    headers = reader(server, site)
    statuses = [server.request("GET", "/export/events?limit=1", headers=headers).status for _ in range(101)]
    assert statuses[:100] == [200] * 100
    last = server.request("GET", "/export/events?limit=1", headers=headers)
    assert last.status == 429
    assert int(last.headers["retry-after"]) >= 1
    assert last.json()["message"] == "You have exceeded the rate limit for this endpoint."
