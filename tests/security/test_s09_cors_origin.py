"""S09 cors-origin: project "acme" allows example.com and *.example.com. A browser event (client id, no
secret) from any other origin is refused with upstream's 401, and nothing is stored; the legitimate
origins are accepted. The read APIs never hand a foreign origin credentialed access."""

from __future__ import annotations

import pytest

from tests.harness import LiveServer
from tests.ingest_support import Site
from tests.security.support import make_world

REJECTED = [
    "https://evil.com",
    "https://example.com.evil.net",
    "https://evilexample.com",
    "https://notexample.com",
    "null",
    "http://example.com:8080@evil.com",
    "https://example.com@evil.com",
    "https://evil.com/https://example.com",
    "https://evil.com#.example.com",
    "https://evil.com?.example.com",
    "https://example.com%2eevil.com",
    "https://example.com\\.evil.com",
    "https://xn--exmple-cua.com",
    "https://exаmple.com".encode().decode("latin-1"),  # a Cyrillic "а", as raw UTF-8 bytes
    "https://*.example.com",
    "https://.example.com",
    "javascript:alert(1)//example.com",
    "https://example.com.",
    " ",
    "https://sub.example.com.evil.net",
    "https://example.co",
    "https://example.com:443.evil.com",
]
ACCEPTED = [
    "https://example.com",
    "http://example.com",
    "https://www.example.com",
    "https://shop.example.com",
    "https://a.b.example.com",
    "HTTPS://EXAMPLE.COM",
]


def _event(marker: str) -> dict[str, object]:
    return {"type": "track", "payload": {"name": "cors_probe", "properties": {"marker": marker}}}


@pytest.mark.parametrize("shape", ["track", "legacy event"])
def test_origin_matrix(server: LiveServer, site: Site, shape: str) -> None:
    path = "/track" if shape == "track" else "/event"
    for i, origin in enumerate(REJECTED):
        body = (
            _event(f"bad-{i}")
            if shape == "track"
            else {"name": "cors_probe", "properties": {"marker": f"bad-{i}"}}
        )
        reply = server.request(
            "POST",
            path,
            body,
            site.headers(Origin=origin) if origin.strip() else {**site.headers(), "Origin": origin},
        )
        assert (reply.status, reply.text) == (401, "Ingestion: Invalid cors or secret"), origin
    for i, origin in enumerate(ACCEPTED):
        body = (
            _event(f"ok-{i}")
            if shape == "track"
            else {"name": "cors_probe", "properties": {"marker": f"ok-{i}"}}
        )
        reply = server.request("POST", path, body, site.headers(Origin=origin))
        assert reply.status in (200, 202), (origin, reply.status, reply.text)
    markers = {
        row[0] for row in server.rows("SELECT properties['marker'] FROM events WHERE name = 'cors_probe'")
    }
    assert markers == {f"ok-{i}" for i in range(len(ACCEPTED))}


def test_no_origin_and_no_secret_is_refused(server: LiveServer, site: Site) -> None:
    reply = server.request("POST", "/track", _event("none"), site.headers(Origin=""))
    assert (reply.status, reply.text) == (401, "Ingestion: Invalid cors or secret")
    wrong = site.headers(Origin="https://evil.com", **{"openpanel-client-secret": "sec_00000000000000000000"})
    assert server.request("POST", "/track", _event("wrong-secret"), wrong).status == 401
    # A server SDK: the secret, no Origin.
    ok = server.request(
        "POST",
        "/track",
        _event("server"),
        site.headers(Origin="", **{"openpanel-client-secret": site.secret}),
    )
    assert ok.status == 200


def test_read_apis_give_no_credentialed_cors_to_foreign_origins(server: LiveServer) -> None:
    world = make_world(server)
    pid = world.project_id
    for path in (f"/api/p/{pid}/cards", f"/export/events?projectId={pid}", f"/p/{pid}", "/projects"):
        for auth in (
            {"Cookie": "; ".join(f"{k}={v}" for k, v in world.owner.cookies.items())},
            world.client_headers("read"),
        ):
            reply = world.owner.request("GET", path, headers={**auth, "Origin": "https://evil.com"})
            assert reply.headers.get("access-control-allow-origin") in (None, "*"), (path, reply.headers)
            assert reply.headers.get("access-control-allow-credentials") != "true", path
