"""S13 route-inventory: the app's route table, as Litestar builds it, must equal this allowlist. A new
route (a debug page, a forgotten test endpoint) fails here until it is added on purpose, and then S03
asks for its row in the authorization table too."""

from __future__ import annotations

from tests.dashboard_support import Client
from tests.harness import LiveServer
from tests.security.support import route_table

# Litestar answers OPTIONS on every path itself (CORS preflight); those are checked as a group below.
ALLOWED = {
    # operations
    "GET /healthz",
    "GET /metrics",
    # ingest (OpenPanel's protocol)
    "POST /track",
    "GET /track/device-id",
    "POST /event",
    "POST /profile",
    "POST /profile/increment",
    "POST /profile/decrement",
    "GET /op1.js",
    # read APIs
    "GET /export/events",
    "GET /api/p/{project_id:str}/cards",
    "GET /api/p/{project_id:str}/series",
    "GET /api/p/{project_id:str}/top/{dimension:str}",
    "GET /api/p/{project_id:str}/live",
    # accounts
    "GET /",
    "GET /login",
    "POST /login",
    "POST /logout",
    "GET /onboarding",
    "POST /onboarding",
    "GET /register",
    "POST /register",
    "GET /account",
    "POST /account/password",
    # projects, clients, members
    "GET /projects",
    "POST /projects",
    "GET /projects/new",
    "GET /p/{project_id:str}/settings",
    "POST /p/{project_id:str}/settings",
    "GET /p/{project_id:str}/setup",
    "GET /p/{project_id:str}/setup/status",
    "GET /p/{project_id:str}/clients",
    "POST /p/{project_id:str}/clients",
    "POST /p/{project_id:str}/clients/{client_id:str}/revoke",
    "GET /p/{project_id:str}/members",
    "POST /p/{project_id:str}/members",
    "POST /p/{project_id:str}/members/{user_id:str}/remove",
    # analytics pages, partials and explorers
    "GET /p/{project_id:str}",
    "GET /p/{project_id:str}/_partials/metrics",
    "GET /p/{project_id:str}/_partials/w/{widget:str}",
    "GET /p/{project_id:str}/_partials/live",
    "GET /p/{project_id:str}/realtime",
    "GET /p/{project_id:str}/realtime/stream",
    "GET /p/{project_id:str}/events",
    "GET /p/{project_id:str}/events/{event_id:str}",
    "GET /p/{project_id:str}/sessions",
    "GET /p/{project_id:str}/sessions/{session_id:str}",
    "GET /p/{project_id:str}/session",
    "GET /p/{project_id:str}/profiles",
    "GET /p/{project_id:str}/profiles/{profile_id:str}",
    "GET /p/{project_id:str}/profile",
    "GET /p/{project_id:str}/profile/erase",
    "POST /p/{project_id:str}/profile/erase",
    # static files (vendored htmx, CSS, the tracker's source)
    "GET /static/{file_path:path}",
    "HEAD /static/{file_path:path}",
    # the OpenAPI description (README: /schema) and the viewers Litestar serves with it
    "GET /schema",
    "GET /schema/openapi.json",
    "GET /schema/openapi.yaml",
    "GET /schema/openapi.yml",
    "GET /schema/redoc",
    "GET /schema/swagger",
    "GET /schema/elements",
    "GET /schema/rapidoc",
    "GET /schema/oauth2-redirect.html",
    "GET /schema/{path:str}",
}


def test_route_table_is_exactly_the_allowlist(server: LiveServer) -> None:
    served = {f"{method} {path}" for method, path, _h in route_table(server) if method != "OPTIONS"}
    assert sorted(served - ALLOWED) == [], "unexpected routes: add them here (and to S03) on purpose"
    assert sorted(ALLOWED - served) == [], "allowlisted routes that no longer exist"
    options = {path for method, path, _h in route_table(server) if method == "OPTIONS"}
    assert options == {entry.split(" ", 1)[1] for entry in ALLOWED}


def test_no_debug_or_dev_handlers(server: LiveServer) -> None:
    names = {h.handler_name for _m, _p, h in route_table(server)}
    paths = {p for _m, p, _h in route_table(server)}
    for word in ("debug", "_dev", "test", "admin", "eval", "shell", "pprof", "trace", "phpinfo"):
        assert not [n for n in names | paths if word in n.lower()], word
    # Litestar's debug mode (tracebacks in error pages) is off.
    for path in ("/no-such-route", "/static/../openpanel.toml", "/schema/no-such-viewer"):
        probe = Client(server).get(path, headers={"Accept": "text/html"})
        assert probe.status == 404, (path, probe.status)
        assert "Traceback" not in probe.text and 'File "' not in probe.text
