"""S04 csrf: every non-GET dashboard route of the app's route table, sent by a logged-in owner (so only
CSRF can stop it) without a token, with a wrong token, with the right token from a foreign Origin, or
from a foreign Referer, is refused with 403, and nothing changes. The same request from this site with
the token goes through (so the 403s are not some other refusal)."""

from __future__ import annotations

import urllib.parse

from openpanel_lite.meta import clients, members, projects, users
from tests.dashboard_support import Client
from tests.harness import LiveServer
from tests.security.support import World, fill, make_world, route_table

SAFE = {"GET", "HEAD", "OPTIONS"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _dashboard_mutations(server: LiveServer) -> list[tuple[str, str]]:
    return sorted(
        (method, path)
        for method, path, handler in route_table(server)
        if method not in SAFE and handler.fn.__module__.startswith("openpanel_lite.dashboard.")
    )


def _values(world: World) -> dict[str, str]:
    meta = world.server.runtime.meta
    spare = users.create_user(meta, "spare@example.com", "spare long passphrase")
    members.add_member(meta, world.project_id, spare.id)
    return {"project_id": world.project_id, "client_id": world.site.client_id, "user_id": spare.id}


def _snapshot(world: World) -> tuple[object, ...]:
    meta = world.server.runtime.meta
    project = projects.get_project(meta, world.project_id)
    return (
        project,
        [(c.id, c.active) for c in clients.list_clients(meta, world.project_id)],
        sorted(m.user_id for m in members.list_members(meta, world.project_id)),
        users.count_users(meta),
        world.server.rows("SELECT count(*) FROM profiles"),
    )


def test_every_dashboard_mutation_needs_token_and_same_origin(server: LiveServer) -> None:
    world = make_world(server)
    values = _values(world)
    owner = world.owner
    own_origin = f"http://127.0.0.1:{server.cfg.server.port}"
    body = urllib.parse.urlencode(
        {
            "name": "Changed",
            "email": "new@example.com",
            "password": "password-x1",
            "password_confirm": "password-x1",
            "current_password": "correct horse battery",
            "type": "root",
            "id": "some-profile",
            "confirm": "erase",
            "domain": "changed.example",
            "timezone": "UTC",
        }
    )
    before = _snapshot(world)
    routes = _dashboard_mutations(server)
    refused = 0
    for method, path in routes:
        url = fill(path, values)
        # Pre-login forms (login, onboarding, register) check the pre-login token the same way.
        attempts = {
            "no token": (body, FORM),
            "wrong token": (body + "&csrf_token=" + "0" * 64, FORM),
            "wrong header token": (body, {**FORM, "X-CSRF-Token": "f" * 64}),
            "foreign Origin": (
                body + f"&csrf_token={owner.csrf}",
                {**FORM, "Origin": "https://evil.example"},
            ),
            "null Origin": (body + f"&csrf_token={owner.csrf}", {**FORM, "Origin": "null"}),
            "look-alike Origin": (
                body + f"&csrf_token={owner.csrf}",
                {**FORM, "Origin": f"{own_origin}.evil.example"},
            ),
            "foreign Referer": (
                body + f"&csrf_token={owner.csrf}",
                {**FORM, "Referer": "https://evil.example/page"},
            ),
        }
        for what, (data, headers) in attempts.items():
            reply = owner.request(method, url, data.encode(), headers)
            assert reply.status == 403, (method, path, what, reply.status, reply.text[:200])
            refused += 1
    assert ("POST", "/p/{project_id:str}/settings") in routes and ("POST", "/logout") in routes
    assert len(routes) >= 12
    assert _snapshot(world) == before  # nothing changed
    assert owner.get("/projects").status == 200  # and the owner is still logged in
    print(f"\nS04: {len(routes)} non-GET dashboard routes x 7 forgeries = {refused} requests, 403 on all")

    # The genuine request from this site passes: the 403s above were CSRF, not something else.
    good = owner.request(
        "POST",
        f"/p/{world.project_id}/settings",
        b"name=Renamed&timezone=UTC&domain=example.com&csrf_token=" + owner.csrf.encode(),
        {**FORM, "Origin": own_origin},
    )
    assert good.status == 200, good.text[:300]
    renamed = projects.get_project(server.runtime.meta, world.project_id)
    assert renamed is not None and renamed.name == "Renamed"


def test_a_token_of_one_session_does_not_work_for_another(server: LiveServer) -> None:
    world = make_world(server)
    member: Client = world.member
    forged = member.request(
        "POST",
        "/account/password",
        b"current_password=member+long+passphrase&password=hijacked-pass&password_confirm=hijacked-pass"
        + b"&csrf_token="
        + world.owner.csrf.encode(),
        FORM,
    )
    assert forged.status == 403
    assert users.authenticate(server.runtime.meta, "member@example.com", "member long passphrase") is not None
