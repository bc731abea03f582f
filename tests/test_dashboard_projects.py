"""Projects, clients, members and the tracking setup page over real HTTP, with exact stored values."""

from __future__ import annotations

import re

from markupsafe import escape

from openpanel_lite.meta import clients, members, projects, users
from openpanel_lite.meta.project_filters import EventFilter, IpFilter, ProfileIdFilter
from openpanel_lite.meta.secrets import verify_secret
from openpanel_lite.snippet import tracking_snippet
from tests.dashboard_support import ADMIN_EMAIL, Client, logged_in, login
from tests.harness import LiveServer
from tests.ingest_support import LONDON_IP, Site, screen_view

FLAT = " ".join(f"{i * 120 / 29:.1f},26.0" for i in range(30))  # 30 days of zero sessions


def owner_of(server: LiveServer, site: Site) -> Client:
    """The admin, logged in, as the owner of the `site` fixture's project."""
    admin = logged_in(server)
    found = users.get_user_by_email(server.runtime.meta, ADMIN_EMAIL)
    assert found is not None
    members.add_member(server.runtime.meta, site.project.id, found.id, role="owner")
    return admin


# ------------------------------------------------------------------------------------------------
# create and edit


def test_project_create_and_edit_round_trip(server: LiveServer) -> None:
    admin = logged_in(server)
    meta = server.runtime.meta
    assert admin.get("/projects/new").status == 200
    created = admin.post(
        "/projects",
        {
            "name": "  Acme   Shop ",
            "domain": "Example.com",
            "timezone": "Europe/Berlin",
            "cors": "",
            "excluded_ips": "10.0.0.1\n10.1.2.3/16",
            "excluded_profile_ids": "bot-1, bot-2",
            "allow_unsafe_revenue": "on",
        },
    )
    assert (created.status, created.location) == (303, "/p/acme-shop/setup")
    project = projects.get_project(meta, "acme-shop")
    assert project is not None
    assert (project.name, project.domain, project.timezone, project.cors) == (
        "Acme Shop",
        "https://example.com",
        "Europe/Berlin",
        ("example.com",),  # no origins given: the domain
    )
    assert project.filters == (
        IpFilter(ip="10.0.0.1"),
        IpFilter(ip="10.1.0.0/16"),
        ProfileIdFilter(profile_id="bot-1"),
        ProfileIdFilter(profile_id="bot-2"),
    )
    assert project.allow_unsafe_revenue_tracking is True
    assert [(m.email, m.role) for m in members.list_members(meta, project.id)] == [(ADMIN_EMAIL, "owner")]
    assert [(c.name, c.type, c.active) for c in clients.list_clients(meta, project.id)] == [
        ("Acme Shop Client", "write", True)
    ]

    page = admin.get("/p/acme-shop/settings").text
    assert 'name="name" value="Acme Shop"' in page
    assert '<option value="Europe/Berlin" selected>' in page
    assert '<textarea name="excluded_ips" rows="2">10.0.0.1\n10.1.0.0/16</textarea>' in page
    assert '<textarea name="excluded_profile_ids" rows="2">bot-1\nbot-2</textarea>' in page
    assert 'name="allow_unsafe_revenue" checked' in page

    # An event filter made elsewhere (API, CLI) survives the form, which does not show it.
    event_filter = EventFilter(name="debug")
    projects.update_project(meta, project.id, filters=[*project.filters, event_filter])
    saved = admin.post(
        "/p/acme-shop/settings",
        {
            "name": "Acme",
            "domain": "https://shop.example.com:8443",
            "timezone": "America/New_York",
            "cors": "shop.example.com\n*.example.com\nshop.example.com",
            "excluded_ips": "",
            "excluded_profile_ids": "p-9",
        },
    )
    assert saved.status == 200 and "Saved." in saved.text
    project = projects.get_project(meta, "acme-shop")
    assert project is not None
    assert (project.id, project.name, project.domain, project.timezone, project.cors) == (
        "acme-shop",
        "Acme",
        "https://shop.example.com:8443",
        "America/New_York",
        ("shop.example.com", "*.example.com"),
    )
    assert project.filters == (ProfileIdFilter(profile_id="p-9"), event_filter)
    assert project.allow_unsafe_revenue_tracking is False

    for bad, message in (
        ({"timezone": "Mars/Olympus"}, "unknown timezone &#39;Mars/Olympus&#39;"),
        ({"excluded_ips": "not-an-ip"}, "IP filter &#39;not-an-ip&#39; is not an IP address"),
        ({"cors": "javascript:alert(1)"}, "only http:// and https:// are allowed"),
        ({"name": "   "}, "project name must not be empty"),
    ):
        refused = admin.post("/p/acme-shop/settings", {"name": "Changed", "timezone": "UTC", **bad})
        assert refused.status == 400 and message in refused.text, (bad, refused.text[-1500:])
    unchanged = projects.get_project(meta, "acme-shop")
    assert unchanged == project


def test_settings_change_applies_to_ingest_at_once(server: LiveServer, site: Site) -> None:
    admin = owner_of(server, site)
    assert site.track(screen_view()).status == 200
    form = {"name": "Acme", "domain": "example.com", "timezone": "UTC", "cors": "example.com\n*.example.com"}
    assert admin.post(f"/p/{site.project.id}/settings", {**form, "excluded_ips": LONDON_IP}).status == 200
    blocked = site.track(screen_view())
    assert (blocked.status, blocked.text) == (401, "Ingestion: IP address is blocked by project filter")
    assert admin.post(f"/p/{site.project.id}/settings", {**form, "cors": "other.example"}).status == 200
    refused = site.track(screen_view())
    assert (refused.status, refused.text) == (401, "Ingestion: Invalid cors or secret")


# ------------------------------------------------------------------------------------------------
# clients


def test_client_secret_is_shown_once_and_stored_hashed(server: LiveServer, site: Site) -> None:
    admin = owner_of(server, site)
    meta = server.runtime.meta
    created = admin.post(f"/p/{site.project.id}/clients", {"name": "Exporter", "type": "read"})
    assert created.status == 201
    assert created.headers["cache-control"] == "no-store"
    secret_match = re.search(r'class="client-secret">(sec_[0-9a-f]{20})<', created.text)
    id_match = re.search(r'class="client-id">([0-9a-f-]{36})<', created.text)
    assert secret_match and id_match
    secret, client_id = secret_match.group(1), id_match.group(1)

    client = clients.get_client(meta, client_id)
    assert client is not None
    assert (client.name, client.type, client.project_id, client.active) == ("Exporter", "read", "acme", True)
    row = meta.query_one("SELECT secret_hash FROM clients WHERE id = :id", {"id": client_id})
    assert row is not None and secret not in row[0] and verify_secret(secret, row[0])
    files = [server.cfg.data_dir / name for name in ("meta.sqlite", "meta.sqlite-wal")]
    assert not any(secret.encode() in f.read_bytes() for f in files if f.exists())

    listing = admin.get(f"/p/{site.project.id}/clients").text
    assert client_id in listing and secret not in listing and "sec_" not in listing
    export = server.request(
        "GET", "/export/events", headers={"openpanel-client-id": client_id, "openpanel-client-secret": secret}
    )
    assert export.status == 200  # the secret shown is the real one

    bad = admin.post(f"/p/{site.project.id}/clients", {"type": "admin"})
    assert bad.status == 400 and "client type must be one of write, read, root" in bad.text
    assert len(clients.list_clients(meta, site.project.id)) == 2


def test_revoking_a_client_stops_its_ingest(server: LiveServer, site: Site) -> None:
    admin = owner_of(server, site)
    assert site.track(screen_view()).status == 200
    revoked = admin.post(f"/p/{site.project.id}/clients/{site.client_id}/revoke")
    assert (revoked.status, revoked.location) == (303, f"/p/{site.project.id}/clients")
    refused = site.track(screen_view())
    assert (refused.status, refused.text) == (401, "Ingestion: Invalid client id")
    client = clients.get_client(server.runtime.meta, site.client_id)
    assert client is not None and not client.active
    assert "revoked" in admin.get(f"/p/{site.project.id}/clients").text
    # A client of another project cannot be revoked through this one.
    other = projects.create_project(server.runtime.meta, "Other", domain=None)
    foreign, _secret = clients.create_client(server.runtime.meta, other.id)
    assert admin.post(f"/p/{site.project.id}/clients/{foreign.id}/revoke").status == 404
    still = clients.get_client(server.runtime.meta, foreign.id)
    assert still is not None and still.active


# ------------------------------------------------------------------------------------------------
# setup page and project list


def test_setup_page_turns_green_after_the_first_event(server: LiveServer, site: Site) -> None:
    admin = owner_of(server, site)
    page = admin.get(f"/p/{site.project.id}/setup")
    assert page.status == 200
    assert str(escape(tracking_snippet(server.cfg.base_url, site.client_id))) in page.text
    assert f'data-client-id="{site.client_id}"' in page.text
    status_path = f"/p/{site.project.id}/setup/status"
    waiting = admin.get(status_path, headers={"HX-Request": "true"}).text
    assert 'class="setup-status waiting"' in waiting and 'hx-trigger="every 2s"' in waiting
    assert f'hx-get="{status_path}"' in waiting

    assert site.track(screen_view()).status == 200
    server.flush()
    done = admin.get(status_path, headers={"HX-Request": "true"})
    assert 'class="setup-status ok"' in done.text and "hx-trigger" not in done.text
    assert 'class="setup-status ok"' in admin.get(f"/p/{site.project.id}/setup").text


def test_project_list_sparkline_counts_daily_sessions(server: LiveServer, site: Site) -> None:
    admin = owner_of(server, site)
    assert admin.post("/projects", {"name": "Empty", "timezone": "UTC"}).status == 303
    before = admin.get("/projects").text
    assert before.count(f'points="{FLAT}"') == 2  # both flat, cached for this data version

    for ip in ("81.2.69.10", "81.2.69.11"):  # two visitors, two sessions today
        assert site.track(screen_view(), **{"X-Forwarded-For": ip}).status == 200
    server.flush()
    after = admin.get("/projects").text
    acme = after[after.index('data-project-id="acme"') : after.index('data-project-id="empty"')]
    expected = " ".join([f"{i * 120 / 29:.1f},26.0" for i in range(29)] + ["120.0,2.0"])
    assert f'points="{expected}"' in acme
    assert "2 sessions · 30 days" in acme
    empty = after[after.index('data-project-id="empty"') :]
    assert f'points="{FLAT}"' in empty and "0 sessions · 30 days" in empty


# ------------------------------------------------------------------------------------------------
# members


def test_members_are_added_and_removed_by_owners(server: LiveServer) -> None:
    admin = logged_in(server)
    meta = server.runtime.meta
    admin.post("/projects", {"name": "Team", "timezone": "UTC"})
    users.create_user(meta, "bob@example.com", "bob-password")

    added = admin.post("/p/team/members", {"email": "Bob@Example.com", "role": "member"})
    assert added.status == 201 and "<strong>bob@example.com</strong> was added." in added.text
    assert "temporary-password" not in added.text

    new = admin.post("/p/team/members", {"email": "carol@example.com", "name": "Carol", "role": "owner"})
    assert new.status == 201
    found = re.search(r'class="temporary-password">([A-Za-z0-9_-]{16})<', new.text)
    assert found
    carol = login(server, "carol@example.com", found.group(1))
    assert 'data-project-id="team"' in carol.get("/projects").text
    assert [(m.email, m.role) for m in members.list_members(meta, "team")] == [
        ("admin@example.com", "owner"),
        ("carol@example.com", "owner"),
        ("bob@example.com", "member"),
    ]
    assert found.group(1) not in admin.get("/p/team/members").text  # shown once

    bob = users.get_user_by_email(meta, "bob@example.com")
    assert bob is not None
    assert admin.post(f"/p/team/members/{bob.id}/remove").location == "/p/team/members"
    carol_user = users.get_user_by_email(meta, "carol@example.com")
    assert carol_user is not None
    assert admin.post(f"/p/team/members/{carol_user.id}/remove").status == 303
    admin_user = users.get_user_by_email(meta, ADMIN_EMAIL)
    assert admin_user is not None
    last = admin.post(f"/p/team/members/{admin_user.id}/remove")
    assert last.status == 400 and "cannot remove the last owner" in last.text
    assert [m.email for m in members.list_members(meta, "team")] == ["admin@example.com"]
    bad = admin.post("/p/team/members", {"email": "dan@example.com", "role": "admin"})
    assert bad.status == 400 and users.get_user_by_email(meta, "dan@example.com") is None
