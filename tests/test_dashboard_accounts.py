"""Dashboard accounts over real HTTP: onboarding, login/logout, session rotation, cookie flags, login
limits, CSRF on every non-GET route, and project isolation (reliability.md §5, S03-S06)."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from openpanel_lite.app import create_app
from openpanel_lite.config import Config
from openpanel_lite.dashboard import session
from openpanel_lite.meta import clients, login_sessions, members, projects, users
from openpanel_lite.meta.users import User
from tests.dashboard_support import ADMIN_EMAIL, ADMIN_PASSWORD, Client, Reply, logged_in, login
from tests.harness import LiveServer
from tests.ingest_support import live_config

SAFE = {"GET", "HEAD", "OPTIONS"}
# Routes authenticated by client id + secret, not by the dashboard cookie: CSRF does not apply.
NOT_COOKIE_AUTHENTICATED = ("openpanel_lite.ingest.", "openpanel_lite.api.export")


def session_cookie_line(reply: Reply) -> str:
    [line] = [c for c in reply.set_cookies if c.startswith("op_session=")]
    return line


def user(server: LiveServer, email: str) -> User:
    found = users.get_user_by_email(server.runtime.meta, email)
    assert found is not None
    return found


# ------------------------------------------------------------------------------------------------
# onboarding


def test_onboarding_creates_the_first_user_once(server: LiveServer) -> None:
    first, second = Client(server), Client(server)
    page = first.get("/onboarding")
    assert page.status == 200
    assert "op_pre=" in page.headers["set-cookie"]
    first.csrf = page.csrf_field()
    second.csrf = second.get("/onboarding").csrf_field()  # a rival visitor, also before any user exists
    assert first.get("/login").location == "/onboarding"  # login makes no sense yet

    form = {"email": " Admin@Example.com ", "name": "Ada", "password": "s3cret-pass", "password_confirm": "x"}
    mismatch = first.post("/onboarding", form)
    assert mismatch.status == 400 and "The passwords do not match." in mismatch.text
    assert users.count_users(server.runtime.meta) == 0

    done = first.post("/onboarding", {**form, "password_confirm": "s3cret-pass"})
    assert (done.status, done.location) == (303, "/projects/new")
    [created] = users.list_users(server.runtime.meta)
    assert (created.email, created.name) == ("admin@example.com", "Ada")
    stored = server.runtime.meta.query_one("SELECT password_hash FROM users")
    assert stored is not None and stored[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert first.get("/projects").status == 200  # logged in by onboarding

    # Second visit: the page sends to login, and a POST (valid token) creates nobody.
    assert (Client(server).get("/onboarding").status, Client(server).get("/onboarding").location) == (
        303,
        "/login",
    )
    refused = second.post(
        "/onboarding",
        {"email": "evil@example.com", "password": "another-pass", "password_confirm": "another-pass"},
    )
    assert refused.status == 403 and "Already set up" in refused.text
    assert [u.email for u in users.list_users(server.runtime.meta)] == ["admin@example.com"]


def test_registration_is_closed_by_default(server: LiveServer) -> None:
    logged_in(server)
    anon = Client(server)
    assert anon.get("/register").status == 404
    anon.csrf = anon.get("/login").csrf_field()
    form = {"email": "new@example.com", "password": "password-1", "password_confirm": "password-1"}
    assert anon.post("/register", form).status == 404
    assert users.count_users(server.runtime.meta) == 1


# ------------------------------------------------------------------------------------------------
# login, logout, sessions


def test_login_and_logout(server: LiveServer) -> None:
    logged_in(server)
    client = Client(server)
    assert client.get("/projects").location == "/login"
    assert client.get("/p/x/setup?a=1").location == "/login?next=/p/x/setup%3Fa%3D1"
    client.csrf = client.get("/login?next=/p/x/setup").csrf_field()

    wrong = client.post("/login", {"email": ADMIN_EMAIL, "password": "not-the-password"})
    assert wrong.status == 400 and "Wrong email or password." in wrong.text
    assert "op_session" not in client.cookies
    unknown = client.post("/login", {"email": "nobody@example.com", "password": ADMIN_PASSWORD})
    assert unknown.status == 400 and "Wrong email or password." in unknown.text

    ok = client.post(
        "/login", {"email": "ADMIN@example.com", "password": ADMIN_PASSWORD, "next": "/p/x/setup"}
    )
    assert (ok.status, ok.location) == (303, "/p/x/setup")
    page = client.get("/projects")
    assert page.status == 200 and ADMIN_EMAIL in page.text
    client.csrf = page.csrf_field()
    assert client.get("/login").location == "/projects"  # already logged in

    token = client.cookies["op_session"]
    out = client.post("/logout")
    assert (out.status, out.location) == (303, "/login")
    assert "Max-Age=0" in session_cookie_line(out)
    # Replaying the logged-out cookie: a page redirects to login, an htmx request gets 401 + HX-Redirect.
    replay = Client(server, cookies={"op_session": token})
    assert replay.get("/projects").location == "/login"
    htmx = replay.get(
        "/p/x/setup/status", headers={"HX-Request": "true", "HX-Current-URL": "http://h/p/x/setup"}
    )
    assert (htmx.status, htmx.headers["hx-redirect"]) == (401, "/login?next=/p/x/setup")
    assert login_sessions.get_login_session(server.runtime.meta, token) is None


def test_password_change_needs_the_current_one_and_logs_out_everywhere(server: LiveServer) -> None:
    client = logged_in(server)
    elsewhere = login(server, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert client.get("/account").status == 200
    new = "a brand new passphrase"
    wrong = client.post(
        "/account/password", {"current_password": "nope-nope", "password": new, "password_confirm": new}
    )
    assert wrong.status == 400 and "The current password is wrong." in wrong.text
    mismatch = client.post(
        "/account/password",
        {"current_password": ADMIN_PASSWORD, "password": new, "password_confirm": new + "x"},
    )
    assert mismatch.status == 400 and "The new passwords do not match." in mismatch.text
    old_token = client.cookies["op_session"]
    done = client.post(
        "/account/password", {"current_password": ADMIN_PASSWORD, "password": new, "password_confirm": new}
    )
    assert (done.status, done.location) == (303, "/account?changed=1")
    assert client.cookies["op_session"] != old_token
    assert "Password changed." in client.get("/account?changed=1").text
    assert elsewhere.get("/projects").location == "/login"  # the other browser is logged out
    assert Client(server, cookies={"op_session": old_token}).get("/projects").location == "/login"
    assert users.authenticate(server.runtime.meta, ADMIN_EMAIL, ADMIN_PASSWORD) is None
    login(server, ADMIN_EMAIL, new)


def test_login_refuses_open_redirects(server: LiveServer) -> None:
    logged_in(server)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        client = Client(server)
        client.csrf = client.get("/login").csrf_field()
        reply = client.post("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": target})
        assert (reply.status, reply.location) == (303, "/projects"), target


def test_session_is_rotated_at_login_and_stored_hashed(server: LiveServer) -> None:
    logged_in(server)
    planted = "attacker-chosen-value-0123456789abcdef"
    client = Client(server, cookies={"op_session": planted})
    client.csrf = client.get("/login").csrf_field()
    client.post("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    first = client.cookies["op_session"]
    assert first != planted
    assert Client(server, cookies={"op_session": planted}).get("/projects").location == "/login"

    # Logging in again from a logged-in browser (say, a second tab): a new token; the old one is dead.
    anon = Client(server)
    token = anon.get("/login").csrf_field()
    relogin = Client(server, cookies={"op_session": first, "op_pre": anon.cookies["op_pre"]}, csrf=token)
    relogin.post("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    second = relogin.cookies["op_session"]
    assert second not in (first, planted)
    assert Client(server, cookies={"op_session": first}).get("/projects").location == "/login"
    assert Client(server, cookies={"op_session": second}).get("/projects").status == 200

    rows = server.runtime.meta.query("SELECT id FROM login_sessions")
    ids = {row[0] for row in rows}
    assert hashlib.sha256(second.encode()).hexdigest() in ids
    assert hashlib.sha256(first.encode()).hexdigest() not in ids
    assert not ids & {first, second, planted}  # tokens are never stored in clear
    assert login_sessions.get_login_session(server.runtime.meta, second) is not None


def test_session_cookie_flags(server: LiveServer, tmp_path: Path) -> None:
    client = logged_in(server)
    expiring = session_cookie_line(client.post("/logout"))
    assert {"max-age=0", "httponly", "samesite=lax", "path=/"} <= {
        p.strip().lower() for p in expiring.split(";")
    }
    fresh = Client(server)
    fresh.csrf = fresh.get("/login").csrf_field()
    line = session_cookie_line(fresh.post("/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
    parts = {p.strip().split("=")[0].lower(): p.strip() for p in line.split(";")}
    assert parts["httponly"] == "HttpOnly"
    assert parts["samesite"].lower() == "samesite=lax"
    assert parts["path"] == "Path=/"
    assert parts["max-age"] == "Max-Age=2592000"  # auth.session_ttl_hours = 720
    assert "secure" not in parts  # plain http, and public_url is not https
    assert re.fullmatch(r"op_session=[A-Za-z0-9_-]{43}", parts["op_session"])

    (tmp_path / "https").mkdir()
    cfg = live_config(tmp_path / "https")
    cfg = msgspec.structs.replace(
        cfg, server=msgspec.structs.replace(cfg.server, public_url="https://analytics.example.com")
    )
    https_server = LiveServer(cfg)
    try:
        reply_client = Client(https_server)
        reply_client.csrf = reply_client.get("/onboarding").csrf_field()
        form = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "password_confirm": ADMIN_PASSWORD}
        line = session_cookie_line(reply_client.post("/onboarding", form))
        assert {"secure", "httponly", "samesite=lax"} <= {p.strip().lower() for p in line.split(";")}
    finally:
        https_server.stop()


# ------------------------------------------------------------------------------------------------
# login limits


def _attempt(server: LiveServer, email: str, password: str, ip: str) -> int:
    client = Client(server)
    client.csrf = client.get("/login").csrf_field()
    return client.post(
        "/login", {"email": email, "password": password}, headers={"X-Forwarded-For": ip}
    ).status


def test_ten_wrong_passwords_for_an_account_then_429(server: LiveServer) -> None:
    logged_in(server)
    # Each guess from another address, so only the per-account counter can stop them.
    statuses = [_attempt(server, ADMIN_EMAIL, f"wrong-{i}-pass", f"203.0.113.{i}") for i in range(10)]
    assert statuses == [400] * 10
    client = Client(server)
    client.csrf = client.get("/login").csrf_field()
    blocked = client.post(
        "/login",
        {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert blocked.status == 429  # even the right password: nothing is verified
    assert 0 < int(blocked.headers["retry-after"]) <= 900
    assert "Too many login attempts." in blocked.text and "op_session" not in client.cookies


def test_ten_failures_from_one_ip_then_429(server: LiveServer) -> None:
    logged_in(server)
    statuses = [_attempt(server, f"user{i}@example.com", "some-password", "192.0.2.1") for i in range(10)]
    assert statuses == [400] * 10
    assert _attempt(server, ADMIN_EMAIL, ADMIN_PASSWORD, "192.0.2.1") == 429
    assert _attempt(server, ADMIN_EMAIL, ADMIN_PASSWORD, "192.0.2.2") == 303  # other addresses are unaffected


def test_parallel_guesses_verify_at_most_ten(server: LiveServer) -> None:
    logged_in(server)
    clients_ = [Client(server) for _ in range(24)]
    for c in clients_:
        c.csrf = c.get("/login").csrf_field()
    statuses: list[int] = []
    lock = threading.Lock()

    def guess(i: int) -> None:
        status = (
            clients_[i]
            .post(
                "/login",
                {"email": ADMIN_EMAIL, "password": f"guess-{i}-x"},
                headers={"X-Forwarded-For": f"10.9.0.{i}"},
            )
            .status
        )
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [400] * 10 + [429] * 14


# ------------------------------------------------------------------------------------------------
# CSRF and authorization over the app's route table


def _routes(server: LiveServer) -> Iterator[tuple[str, str, Any]]:
    """(method, path template, handler function) of every route of the app, HEAD/OPTIONS left out."""
    app = create_app(server.cfg, runtime=server.runtime)
    for route in app.routes:
        for method, entry in getattr(route, "route_handler_map", {}).items():
            handler = entry[0] if isinstance(entry, tuple) else entry
            if method not in ("HEAD", "OPTIONS"):
                yield method, route.path, handler.fn


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "x"), path)


@pytest.fixture
def two_projects(server: LiveServer) -> dict[str, Any]:
    """Admin owns A and B; Mia is a plain member of A only. Both are logged in."""
    admin = logged_in(server)
    meta = server.runtime.meta
    admin_user = user(server, ADMIN_EMAIL)
    a = projects.create_project(meta, "Alpha", domain="a.example", owner_user_id=admin_user.id)
    b = projects.create_project(meta, "Beta", domain="b.example", owner_user_id=admin_user.id)
    b_client, _secret = clients.create_client(meta, b.id)
    mia = users.create_user(meta, "mia@example.com", "mia-password")
    members.add_member(meta, a.id, mia.id, role="member")
    return {
        "admin": admin,
        "mia": login(server, "mia@example.com", "mia-password"),
        "a": a.id,
        "b": b.id,
        "values_b": {"project_id": b.id, "client_id": b_client.id, "user_id": admin_user.id},
    }


def test_every_non_get_route_needs_a_csrf_token_and_same_origin(
    server: LiveServer, two_projects: dict[str, Any]
) -> None:
    admin: Client = two_projects["admin"]
    anon = Client(server)
    anon.csrf = anon.get("/login").csrf_field()  # a valid pre-login token for the pre-login forms
    checked = []
    for method, path, fn in _routes(server):
        if method in SAFE or fn.__module__.startswith(NOT_COOKIE_AUTHENTICATED):
            continue
        client = admin if "viewer" in inspect.signature(fn).parameters else anon
        url = _fill(path, two_projects["values_b"])
        body = b"name=Changed&email=x%40example.com&password=password-x&password_confirm=password-x"
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        no_token = client.request(method, url, body, form)
        assert no_token.status == 403, (method, path, no_token.status, no_token.text[:200])
        wrong = client.request(method, url, body + b"&csrf_token=" + b"0" * 64, form)
        assert wrong.status == 403, (method, path, wrong.status)
        for origin in (
            "https://evil.example",
            "null",
            f"http://127.0.0.1:{server.cfg.server.port}.evil.example",
        ):
            foreign = client.request(
                method, url, body + f"&csrf_token={client.csrf}".encode(), {**form, "Origin": origin}
            )
            assert foreign.status == 403, (method, path, origin, foreign.status)
        header_only = client.request(
            method, url, body, {**form, "X-CSRF-Token": "f" * 64, "Referer": "https://evil.example/page"}
        )
        assert header_only.status == 403, (method, path)
        checked.append((method, path))
    mine = {
        ("POST", "/login"),
        ("POST", "/logout"),
        ("POST", "/account/password"),
        ("POST", "/onboarding"),
        ("POST", "/register"),
        ("POST", "/projects"),
        ("POST", "/p/{project_id:str}/settings"),
        ("POST", "/p/{project_id:str}/clients"),
        ("POST", "/p/{project_id:str}/clients/{client_id:str}/revoke"),
        ("POST", "/p/{project_id:str}/members"),
        ("POST", "/p/{project_id:str}/members/{user_id:str}/remove"),
    }
    assert mine <= set(checked)
    # Nothing changed: B keeps its name and client, the admin is still logged in.
    meta = server.runtime.meta
    b = projects.get_project(meta, two_projects["b"])
    assert b is not None and b.name == "Beta"
    assert all(c.active for c in clients.list_clients(meta, b.id))
    assert users.count_users(meta) == 2
    assert admin.get("/projects").status == 200


def test_same_origin_requests_with_the_token_pass(server: LiveServer, two_projects: dict[str, Any]) -> None:
    admin: Client = two_projects["admin"]
    own = f"http://127.0.0.1:{server.cfg.server.port}"
    reply = admin.post(
        f"/p/{two_projects['a']}/settings", {"name": "Alpha 2", "timezone": "UTC"}, headers={"Origin": own}
    )
    assert reply.status == 200 and "Saved." in reply.text
    # htmx sends the token as a header instead of a form field.
    htmx = admin.request(
        "POST",
        f"/p/{two_projects['a']}/settings",
        b"name=Alpha+3&timezone=UTC",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-CSRF-Token": admin.csrf,
            "HX-Request": "true",
        },
    )
    assert htmx.status == 200
    project = projects.get_project(server.runtime.meta, two_projects["a"])
    assert project is not None and project.name == "Alpha 3"


def test_a_member_of_a_gets_404_on_every_route_of_b(server: LiveServer, two_projects: dict[str, Any]) -> None:
    mia: Client = two_projects["mia"]
    checked = []
    for method, path, fn in _routes(server):
        if "{project_id" not in path:
            continue
        url = _fill(path, two_projects["values_b"])
        reply = mia.post(url, {"name": "x"}) if method == "POST" else mia.request(method, url)
        if fn.__module__.startswith("openpanel_lite.dashboard."):
            assert reply.status == 404, (method, path, reply.status)
        else:
            assert reply.status >= 400, (method, path, reply.status)
        checked.append((method, path))
    assert len(checked) >= 10
    # Her own project A works, read-only: owners' actions are 403 for a member.
    a = two_projects["a"]
    assert mia.get(f"/p/{a}/settings").status == 200
    assert "<fieldset disabled>" in mia.get(f"/p/{a}/settings").text
    assert mia.post(f"/p/{a}/settings", {"name": "Taken over"}).status == 403
    assert mia.post(f"/p/{a}/clients", {"type": "root"}).status == 403
    assert mia.post(f"/p/{a}/members", {"email": "friend@example.com"}).status == 403
    listing = mia.get("/projects").text
    assert 'data-project-id="alpha"' in listing and 'data-project-id="beta"' not in listing


# ------------------------------------------------------------------------------------------------
# the auth secret key, CSRF token derivation, registration, landing page


def test_auth_secret_key_is_generated_once_with_mode_0600(config: Config, tmp_path: Path) -> None:
    key = session.auth_secret_key(config)
    path = config.data_dir / "secret.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(rb"[0-9a-f]{64}", key) and path.read_bytes().strip() == key
    session._secret_key.cache_clear()  # a restart: the file is read, not replaced
    assert session.auth_secret_key(config) == key

    other = tmp_path / "other"
    other.mkdir()
    configured = msgspec.structs.replace(
        config,
        data=msgspec.structs.replace(config.data, dir=str(other)),
        auth=msgspec.structs.replace(config.auth, secret_key="k" * 40),
    )
    assert session.auth_secret_key(configured) == b"k" * 40
    assert not (other / "secret.key").exists()


def test_csrf_token_is_the_hmac_of_the_session_seed(server: LiveServer) -> None:
    client = logged_in(server)
    seed = login_sessions.get_login_session(server.runtime.meta, client.cookies["op_session"])
    assert seed is not None
    key = (server.cfg.data_dir / "secret.key").read_bytes().strip()
    expected = hmac.new(key, f"csrf:{seed.csrf_seed}".encode(), hashlib.sha256).hexdigest()
    page = client.get("/projects").text
    assert client.csrf == expected
    assert f'hx-headers=\'{{"X-CSRF-Token": "{expected}"}}\'' in page


def test_open_registration(tmp_path: Path) -> None:
    cfg = live_config(tmp_path)
    cfg = msgspec.structs.replace(cfg, auth=msgspec.structs.replace(cfg.auth, allow_registration=True))
    srv = LiveServer(cfg)
    try:
        logged_in(srv)
        anon = Client(srv)
        page = anon.get("/register")
        assert page.status == 200
        anon.csrf = page.csrf_field()
        assert 'href="/register"' in anon.get("/login").text
        form = {"email": "new@example.com", "password": "password-1", "password_confirm": "password-1"}
        done = anon.post("/register", form)
        assert (done.status, done.location) == (303, "/projects")
        assert anon.get("/projects").status == 200
        again = Client(srv)
        again.csrf = again.get("/register").csrf_field()
        dup = again.post("/register", {**form, "email": "NEW@example.com"})
        assert dup.status == 400 and "already exists" in dup.text
        assert [u.email for u in users.list_users(srv.runtime.meta)] == [ADMIN_EMAIL, "new@example.com"]
    finally:
        srv.stop()


def test_home_redirects_by_state(tmp_path: Path) -> None:
    srv = LiveServer(live_config(tmp_path))
    try:
        assert Client(srv).get("/").location == "/onboarding"
        client = logged_in(srv)
        assert Client(srv).get("/").location == "/login"
        assert client.get("/").location == "/projects"
    finally:
        srv.stop()
