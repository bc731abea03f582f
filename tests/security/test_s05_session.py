"""S05 session: no fixation (a token from before the login, planted or not, is never the one after it),
cookie flags (HttpOnly and SameSite=Lax always, Secure when the public URL is https), and a session cookie
replayed after logout is refused everywhere: pages redirect to /login, htmx and the JSON twins get 401."""

from __future__ import annotations

from pathlib import Path

import msgspec

from tests.dashboard_support import ADMIN_EMAIL, ADMIN_PASSWORD, Client, Reply, logged_in
from tests.harness import LiveServer
from tests.ingest_support import live_config
from tests.security.support import make_world


def _cookie_attrs(reply: Reply, name: str) -> dict[str, str]:
    [line] = [c for c in reply.set_cookies if c.startswith(f"{name}=")]
    attrs = {}
    for part in line.split(";"):
        key, _, value = part.strip().partition("=")
        attrs[key.lower()] = value
    return attrs


def _login(server: LiveServer, client: Client) -> Reply:
    client.csrf = client.get("/login").csrf_field()
    return client.post("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})


def test_login_never_keeps_a_pre_login_token(server: LiveServer) -> None:
    logged_in(server)
    rotations = 0
    for planted in ("attacker-chosen-0123456789abcdef-0123", "A" * 43, ""):
        client = Client(server, cookies={"op_session": planted} if planted else {})
        pre = client.get("/login")
        pre_cookie = client.cookies.get("op_pre")
        assert pre_cookie and "op_session" not in {c.split("=")[0] for c in pre.set_cookies}
        reply = _login(server, client)
        assert reply.status == 303
        after = client.cookies["op_session"]
        assert after not in (planted, pre_cookie)
        assert "op_pre" not in client.cookies  # the pre-login cookie ends with the login
        rotations += 1
        if planted:
            # The planted value never became a session.
            assert Client(server, cookies={"op_session": planted}).get("/projects").status == 303
    # Logging in again from a logged-in browser gives a new token and ends the old one.
    client = Client(server)
    _login(server, client)
    first = client.cookies["op_session"]
    fresh = Client(server)
    fresh.csrf = fresh.get("/login").csrf_field()
    logged_in_again = Client(server, cookies={"op_session": first, "op_pre": fresh.cookies["op_pre"]})
    logged_in_again.csrf = fresh.csrf
    logged_in_again.post("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    second = logged_in_again.cookies["op_session"]
    assert second != first
    assert Client(server, cookies={"op_session": first}).get("/projects").status == 303
    assert rotations == 3


def test_session_cookie_flags_on_http(server: LiveServer) -> None:
    logged_in(server)
    client = Client(server)
    attrs = _cookie_attrs(_login(server, client), "op_session")
    assert "httponly" in attrs and attrs["samesite"].lower() == "lax" and attrs["path"] == "/"
    assert "secure" not in attrs  # plain http on 127.0.0.1: a Secure cookie would never come back
    pre = _cookie_attrs(Client(server).get("/login"), "op_pre")
    assert "httponly" in pre and pre["samesite"].lower() == "lax"


def test_session_cookie_is_secure_behind_https(tmp_path: Path) -> None:
    cfg = live_config(tmp_path)
    cfg = msgspec.structs.replace(
        cfg, server=msgspec.structs.replace(cfg.server, public_url="https://analytics.example.com")
    )
    server = LiveServer(cfg)
    try:
        client = Client(server)
        page = client.get("/onboarding")
        assert {"secure", "httponly"} <= set(_cookie_attrs(page, "op_pre"))
        client.csrf = page.csrf_field()
        form = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "password_confirm": ADMIN_PASSWORD}
        reply = client.post("/onboarding", form)
        assert reply.status == 303
        attrs = _cookie_attrs(reply, "op_session")
        assert {"secure", "httponly"} <= set(attrs) and attrs["samesite"].lower() == "lax"
    finally:
        server.stop()


def test_logout_replay_is_refused(server: LiveServer) -> None:
    world = make_world(server)
    owner = world.owner
    token = owner.cookies["op_session"]
    pid = world.project_id
    assert owner.get(f"/p/{pid}").status == 200
    assert owner.post("/logout").status == 303
    replay = Client(server, cookies={"op_session": token})
    page = replay.get(f"/p/{pid}")
    assert (page.status, page.location) == (303, f"/login?next=/p/{pid}")
    htmx = replay.get(f"/p/{pid}/_partials/metrics", headers={"HX-Request": "true"})
    assert htmx.status == 401 and htmx.headers["hx-redirect"].startswith("/login")
    assert replay.get(f"/api/p/{pid}/cards").status == 401
    # A replayed mutation is refused before any CSRF check could matter.
    settings = replay.post(f"/p/{pid}/settings", {"name": "Replayed"})
    assert settings.status == 303 and settings.location is not None and settings.location.startswith("/login")
    # The session row is gone from the database, not only the browser's cookie.
    rows = server.runtime.meta.query(
        "SELECT count(*) FROM login_sessions WHERE user_id = (SELECT id FROM users WHERE email = :e)",
        {"e": ADMIN_EMAIL},
    )
    assert rows[0][0] == 0
