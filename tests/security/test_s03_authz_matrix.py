"""S03 authz-matrix: every route of the app's route table (enumerated, not hand-listed: a route without
a row in EXPECTED fails) × {anonymous, member of another project, read client, write client, member,
owner}, each answered with exactly the status EXPECTED declares.

The app has no share tokens; API clients stand in for the spec's non-user callers. Requests carry what
that caller would have: a login cookie (+ the session's CSRF token on POSTs, so refusals are about who
asks, not about CSRF) or openpanel-client-id/secret headers. Mutating routes run after the reads, the
owner last of all, and target spare objects (a spare client, member and profile); /logout is last.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from dataclasses import dataclass

from openpanel_lite.meta import clients, members, users
from tests.dashboard_support import Client, Reply
from tests.harness import LiveServer
from tests.security.support import World, fill, make_world, route_table

ROLES = ("anonymous", "outsider", "read", "write", "member", "owner")


def _row(anonymous: int, outsider: int, read: int, write: int, member: int, owner: int) -> dict[str, int]:
    return dict(zip(ROLES, (anonymous, outsider, read, write, member, owner), strict=True))


# Shapes shared by many routes. 303 = redirect to /login; 404 = "no such project" for non-members.
PAGE = _row(303, 404, 303, 303, 200, 200)  # a project's dashboard page
PUBLIC = _row(200, 200, 200, 200, 200, 200)
USER_PAGE = _row(303, 200, 303, 303, 200, 200)  # any logged-in user
OWNER_POST_OK = _row(303, 404, 303, 303, 403, 303)  # owner-only action, answered with a redirect
OWNER_FORM_OK = _row(303, 404, 303, 303, 403, 200)  # owner-only action, answered with the page
OWNER_CREATES = _row(303, 404, 303, 303, 403, 201)  # owner-only action that creates something
TWIN = _row(401, 404, 200, 403, 200, 200)  # JSON twins: login session or read client
# Ingest takes any client of the project (read clients too, as upstream: openpanel-facts §4), never a
# login cookie.
INGEST = _row(401, 401, 200, 200, 401, 401)

EXPECTED: dict[str, dict[str, int]] = {
    "GET /healthz": PUBLIC,
    "GET /metrics": PUBLIC,
    "GET /op1.js": PUBLIC,
    "GET /static/{file_path:path}": PUBLIC,
    "HEAD /static/{file_path:path}": PUBLIC,
    "GET /schema": PUBLIC,
    "GET /schema/openapi.json": PUBLIC,
    "GET /schema/openapi.yaml": PUBLIC,
    "GET /schema/openapi.yml": PUBLIC,
    "GET /schema/redoc": PUBLIC,
    "GET /schema/swagger": PUBLIC,
    "GET /schema/elements": PUBLIC,
    "GET /schema/rapidoc": PUBLIC,
    "GET /schema/oauth2-redirect.html": PUBLIC,
    "GET /schema/{path:str}": _row(404, 404, 404, 404, 404, 404),
    "POST /track": INGEST,
    "POST /event": _row(401, 401, 202, 202, 401, 401),
    "POST /profile": _row(401, 401, 202, 202, 401, 401),
    "POST /profile/increment": _row(401, 401, 202, 202, 401, 401),
    "POST /profile/decrement": _row(401, 401, 202, 202, 401, 401),
    "GET /track/device-id": INGEST,
    "GET /export/events": _row(401, 401, 200, 403, 401, 401),
    "GET /api/p/{project_id:str}/cards": TWIN,
    "GET /api/p/{project_id:str}/series": TWIN,
    "GET /api/p/{project_id:str}/top/{dimension:str}": TWIN,
    "GET /api/p/{project_id:str}/live": TWIN,
    # accounts
    "GET /": _row(303, 303, 303, 303, 303, 303),
    "GET /login": _row(200, 303, 200, 200, 303, 303),
    # The pre-login forms get a valid pre-login CSRF token, so what is refused here is the action.
    "POST /login": _row(400, 400, 400, 400, 400, 400),  # a wrong password
    "GET /onboarding": _row(303, 303, 303, 303, 303, 303),  # closed after the first user
    "POST /onboarding": _row(403, 403, 403, 403, 403, 403),  # "setup is done" page
    "GET /register": _row(404, 404, 404, 404, 404, 404),  # registration is closed by default
    "POST /register": _row(404, 404, 404, 404, 404, 404),
    "GET /account": USER_PAGE,
    "POST /account/password": _row(303, 400, 303, 303, 400, 400),  # wrong current password
    "POST /logout": _row(303, 303, 303, 303, 303, 303),
    # projects, clients, members
    "GET /projects": USER_PAGE,
    "POST /projects": _row(303, 303, 303, 303, 303, 303),  # any user may start a project of their own
    "GET /projects/new": USER_PAGE,
    "GET /p/{project_id:str}/settings": PAGE,
    "POST /p/{project_id:str}/settings": OWNER_FORM_OK,
    "GET /p/{project_id:str}/setup": PAGE,
    "GET /p/{project_id:str}/setup/status": PAGE,
    "GET /p/{project_id:str}/clients": PAGE,
    "POST /p/{project_id:str}/clients": OWNER_CREATES,
    "POST /p/{project_id:str}/clients/{client_id:str}/revoke": OWNER_POST_OK,
    "GET /p/{project_id:str}/members": PAGE,
    "POST /p/{project_id:str}/members": OWNER_CREATES,
    "POST /p/{project_id:str}/members/{user_id:str}/remove": OWNER_POST_OK,
    # analytics
    "GET /p/{project_id:str}": PAGE,
    "GET /p/{project_id:str}/_partials/metrics": PAGE,
    "GET /p/{project_id:str}/_partials/w/{widget:str}": PAGE,
    "GET /p/{project_id:str}/_partials/live": PAGE,
    "GET /p/{project_id:str}/realtime": PAGE,
    "GET /p/{project_id:str}/realtime/stream": PAGE,
    "GET /p/{project_id:str}/events": PAGE,
    "GET /p/{project_id:str}/events/{event_id:str}": PAGE,
    "GET /p/{project_id:str}/sessions": PAGE,
    "GET /p/{project_id:str}/sessions/{session_id:str}": PAGE,
    "GET /p/{project_id:str}/session": PAGE,
    "GET /p/{project_id:str}/profiles": PAGE,
    "GET /p/{project_id:str}/profiles/{profile_id:str}": PAGE,
    "GET /p/{project_id:str}/profile": PAGE,
    "GET /p/{project_id:str}/profile/erase": _row(303, 404, 303, 303, 403, 200),
    "POST /p/{project_id:str}/profile/erase": OWNER_FORM_OK,
}
PRE_LOGIN_FORMS = ("/login", "/onboarding", "/register")
# Query strings and form bodies that make each request meaningful (ids filled in by _Targets).
QUERY = {
    "/export/events": "projectId={project_id}",
    "/p/{project_id:str}/session": "id={session_id}",
    "/p/{project_id:str}/profile": "id={profile_id}",
    "/p/{project_id:str}/profile/erase": "id={spare_profile}",
    "/api/p/{project_id:str}/series": "metric=unique_visitors",
}
FORM = {
    "/account/password": {
        "current_password": "not the password",
        "password": "x" * 12,
        "password_confirm": "x" * 12,
    },
    "/projects": {"name": "Mine", "domain": "mine.example", "timezone": "UTC"},
    "/p/{project_id:str}/settings": {"name": "Acme", "timezone": "UTC", "domain": "example.com"},
    "/p/{project_id:str}/clients": {"type": "read", "name": "From the matrix"},
    "/p/{project_id:str}/members": {"email": "spare@example.com", "role": "member"},
    "/p/{project_id:str}/profile/erase": {"id": "{spare_profile}", "confirm": "erase"},
    "/login": {"email": "member@example.com", "password": "wrong password"},
}


@dataclass
class _Targets:
    values: dict[str, str]

    def url(self, method: str, path: str) -> str:
        url = fill(path, self.values)
        query = QUERY.get(path)
        return f"{url}?{query.format(**self.values)}" if query else url

    def form(self, path: str) -> dict[str, str]:
        return {k: v.format(**self.values) for k, v in FORM.get(path, {"x": "1"}).items()}


def _targets(world: World) -> _Targets:
    server, site = world.server, world.site
    meta = server.runtime.meta
    for profile in ("matrix-user", "spare-profile"):
        body = {"type": "track", "payload": {"name": "matrix", "profileId": profile, "properties": {}}}
        assert site.track(body).status == 200
    server.flush()
    [(event_id, session_id)] = server.rows(
        "SELECT id, session_id FROM events WHERE profile_id = 'matrix-user' AND name = 'matrix'"
    )
    spare_client, _secret = clients.create_client(meta, site.project.id, type="read", name="Spare")
    spare = users.create_user(meta, "spare@example.com", "spare long passphrase")
    members.add_member(meta, site.project.id, spare.id)
    return _Targets(
        {
            "project_id": site.project.id,
            "event_id": str(event_id),
            "session_id": str(session_id),
            "profile_id": "matrix-user",
            "spare_profile": "spare-profile",
            "widget": "sources",
            "dimension": "pages",
            "client_id": spare_client.id,
            "user_id": spare.id,
            "file_path": "css/base.css",
            "path": "no-such-viewer",
        }
    )


def _call(world: World, role: str, method: str, path: str, targets: _Targets) -> Reply:
    url = targets.url(method, path)
    anon = Client(world.server)
    cookie_client = {"outsider": world.outsider, "member": world.member, "owner": world.owner}.get(role)
    client = cookie_client or anon
    headers: dict[str, str] = {"X-Forwarded-For": f"198.51.100.{ROLES.index(role) + 10}"}
    if role in ("read", "write"):
        headers.update(world.client_headers(role))
    if path in (
        "/track",
        "/event",
        "/profile",
        "/profile/increment",
        "/profile/decrement",
        "/track/device-id",
    ):
        headers.update({k: v for k, v in world.site.headers().items() if not k.startswith("openpanel")})
        if role not in ("read", "write"):
            headers.pop("openpanel-client-secret", None)
        body = _ingest_body(path)
        return client.request(
            method, url, body.encode() if body else None, {**headers, "Content-Type": "application/json"}
        )
    if path.endswith("/realtime/stream"):
        return _status_only(world.server, url, client, headers)
    if method == "POST":
        form = targets.form(path)
        if path in PRE_LOGIN_FORMS:
            # A valid pre-login token (bound to an op_pre cookie) next to whatever the caller has.
            fresh = Client(world.server)
            form["csrf_token"] = fresh.get("/login").csrf_field()
            client = Client(world.server, cookies={**client.cookies, "op_pre": fresh.cookies["op_pre"]})
        elif cookie_client is not None:
            form["csrf_token"] = cookie_client.csrf
        return client.request(
            method,
            url,
            urllib.parse.urlencode(form).encode(),
            {**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    return client.request(method, url, headers=headers)


def _status_only(server: LiveServer, url: str, client: Client, headers: dict[str, str]) -> Reply:
    """The status of an SSE stream, which never ends by itself: read the head, then hang up."""
    conn = http.client.HTTPConnection("127.0.0.1", server.cfg.server.port, timeout=30)
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        conn.request("GET", url, headers={**headers, **({"Cookie": cookie} if cookie else {})})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, [], b"")
    finally:
        conn.close()


def _ingest_body(path: str) -> str:
    if path == "/track/device-id":
        return ""
    if path == "/track":
        return '{"type": "track", "payload": {"name": "authz", "properties": {}}}'
    if path == "/event":
        return '{"name": "authz", "properties": {}}'
    if path == "/profile":
        return '{"profileId": "matrix-user", "firstName": "M"}'
    return '{"profileId": "matrix-user", "property": "visits", "value": 1}'


def _order(key: str) -> tuple[int, str]:
    method, path = key.split(" ", 1)
    if path == "/logout":
        return (3, key)
    return (2 if method == "POST" else 1, key)


def test_every_route_for_every_role_matches_the_table(server: LiveServer) -> None:
    world = make_world(server)
    targets = _targets(world)
    served = {f"{m} {p}" for m, p, _h in route_table(server) if m != "OPTIONS"}
    assert sorted(served - set(EXPECTED)) == [], "routes without a row in EXPECTED"
    assert sorted(set(EXPECTED) - served) == [], "rows for routes that no longer exist"
    got: dict[str, dict[str, int]] = {}
    for key in sorted(served, key=_order):
        method, path = key.split(" ", 1)
        # Mutations: the owner, whose requests succeed, goes last.
        roles = ROLES if method != "POST" else ("anonymous", "read", "write", "outsider", "member", "owner")
        got[key] = {}
        for role in roles:
            t0 = time.monotonic()
            got[key][role] = _call(world, role, method, path, targets).status
            assert time.monotonic() - t0 < 20, (key, role)  # nothing hangs (the SSE stream included)
    mismatches = {key: (got[key], EXPECTED[key]) for key in got if got[key] != EXPECTED[key]}
    for key, (g, e) in mismatches.items():
        print("MISMATCH", key, "got", tuple(g[r] for r in ROLES), "expected", tuple(e[r] for r in ROLES))
    assert mismatches == {}
    unexpected_2xx = [
        (key, role)
        for key, row in got.items()
        for role, status in row.items()
        if 200 <= status < 300 and EXPECTED[key][role] >= 300
    ]
    assert unexpected_2xx == []
    print(f"\nS03: {len(got)} routes x {len(ROLES)} roles = {len(got) * len(ROLES)} requests, 0 mismatches")
    # The owner's mutations took effect; nobody else's did.
    meta = server.runtime.meta
    spare_client = clients.get_client(meta, targets.values["client_id"])
    assert spare_client is not None and not spare_client.active
    assert members.get_role(meta, world.project_id, targets.values["user_id"]) is None


def test_options_never_runs_a_handler_or_grants_a_foreign_origin(server: LiveServer) -> None:
    """OPTIONS on any path is answered by Litestar (or /track's own preflight): no data, for nobody, and
    no foreign origin is let in with credentials."""
    world = make_world(server)
    targets = _targets(world)
    seen = set()
    for method, path, _h in route_table(server):
        if method != "OPTIONS":
            continue
        for client in (Client(server), world.owner):
            reply = client.request(
                "OPTIONS",
                targets.url("GET", path),
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
            )
            seen.add(reply.status)
            assert reply.status in (204, 400), (path, reply.status)
            assert reply.body in (b"", b"Invalid Preflight Request"), (path, reply.body[:100])
            assert reply.headers.get("access-control-allow-credentials") != "true", path
            assert reply.headers.get("access-control-allow-origin") in (None, "*"), path
    assert seen
