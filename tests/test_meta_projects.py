"""Metadata store records: users and members, projects (ids, validation, filters) and API clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type
from hypothesis import given
from hypothesis import strategies as st

from openpanel_lite.meta import MetaDB, MetaError
from openpanel_lite.meta.clients import (
    authenticate_client,
    create_client,
    get_client,
    list_clients,
    revoke_client,
)
from openpanel_lite.meta.members import add_member, get_role, list_members, remove_member
from openpanel_lite.meta.project_filters import EventFilter, EventPropertyFilter, IpFilter, ProfileIdFilter
from openpanel_lite.meta.projects import (
    create_project,
    delete_project,
    get_project,
    list_projects,
    slugify,
    update_project,
)
from openpanel_lite.meta.secrets import verify_secret
from openpanel_lite.meta.users import (
    authenticate,
    count_users,
    create_user,
    get_user,
    get_user_by_email,
    set_password,
)

NOW = datetime(2026, 6, 8, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[MetaDB]:
    meta = MetaDB(tmp_path / "meta.sqlite")
    meta.migrate()
    yield meta
    meta.close()


# ------------------------------------------------------------------------------------------------
# users and members


def test_create_and_get_user_round_trip(db: MetaDB) -> None:
    user = create_user(db, "  Ada@Example.COM ", PASSWORD, name="  Ada   Lovelace ", now=NOW)
    assert re.fullmatch(r"[0-9a-f-]{36}", user.id)
    assert (user.email, user.name, user.created_at, user.updated_at) == (
        "ada@example.com",
        "Ada Lovelace",
        NOW,
        NOW,
    )
    assert get_user(db, user.id) == user
    assert get_user_by_email(db, "ADA@example.com") == user
    assert get_user_by_email(db, "not an email") is None
    assert get_user(db, "missing") is None
    assert count_users(db) == 1


def test_duplicate_and_invalid_users_are_refused_with_clear_messages(db: MetaDB) -> None:
    create_user(db, "ada@example.com", PASSWORD, now=NOW)
    with pytest.raises(MetaError, match="^a user with email ada@example.com already exists$"):
        create_user(db, "ADA@example.com", "another password")
    with pytest.raises(MetaError, match="^'ada@' is not a valid email address$"):
        create_user(db, "ada@", PASSWORD)
    with pytest.raises(MetaError, match="password must be 8 to 255"):
        create_user(db, "bob@example.com", "short")
    assert count_users(db) == 1


def test_authenticate_checks_password_and_upgrades_weak_hashes(db: MetaDB) -> None:
    user = create_user(db, "ada@example.com", PASSWORD, now=NOW)
    assert authenticate(db, "ADA@example.com", PASSWORD) == user
    assert authenticate(db, "ada@example.com", PASSWORD + "!") is None
    assert authenticate(db, "nobody@example.com", PASSWORD) is None
    assert authenticate(db, "garbage", PASSWORD) is None
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID).hash(PASSWORD)
    db.execute("UPDATE users SET password_hash = :h WHERE id = :id", {"h": weak, "id": user.id})
    assert authenticate(db, "ada@example.com", PASSWORD) == user
    row = db.query_one("SELECT password_hash FROM users WHERE id = :id", {"id": user.id})
    assert row is not None and row[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    set_password(db, user.id, "a new password", now=NOW + timedelta(hours=1))
    assert authenticate(db, "ada@example.com", PASSWORD) is None
    changed = authenticate(db, "ada@example.com", "a new password")
    assert changed is not None and changed.updated_at == NOW + timedelta(hours=1)
    with pytest.raises(MetaError, match="^no user with id 'missing'$"):
        set_password(db, "missing", "a new password")


def test_members_roles_and_last_owner_protection(db: MetaDB) -> None:
    ada = create_user(db, "ada@example.com", PASSWORD, now=NOW)
    bob = create_user(db, "bob@example.com", PASSWORD, now=NOW)
    project = create_project(db, "Shop", domain="shop.example", owner_user_id=ada.id, now=NOW)
    member = add_member(db, project.id, bob.id, now=NOW + timedelta(minutes=1))
    assert (member.email, member.role, member.created_at) == (
        "bob@example.com",
        "member",
        NOW + timedelta(minutes=1),
    )
    assert [(m.email, m.role) for m in list_members(db, project.id)] == [
        ("ada@example.com", "owner"),
        ("bob@example.com", "member"),
    ]
    assert get_role(db, project.id, ada.id) == "owner"
    assert get_role(db, "other", ada.id) is None
    with pytest.raises(MetaError, match="^cannot demote the last owner of project 'shop'$"):
        add_member(db, project.id, ada.id, role="member")
    with pytest.raises(MetaError, match="^cannot remove the last owner of project 'shop'$"):
        remove_member(db, project.id, ada.id)
    with pytest.raises(MetaError, match="^no user with id 'ghost'$"):
        add_member(db, project.id, "ghost")
    assert add_member(db, project.id, bob.id, role="owner").role == "owner"
    assert remove_member(db, project.id, ada.id) is True
    assert remove_member(db, project.id, ada.id) is False
    assert [p.id for p in list_projects(db, user_id=ada.id)] == []
    assert [p.id for p in list_projects(db, user_id=bob.id)] == ["shop"]


# ------------------------------------------------------------------------------------------------
# projects


def test_create_project_round_trip_with_normalised_fields(db: MetaDB) -> None:
    owner = create_user(db, "ada@example.com", PASSWORD, now=NOW)
    project = create_project(
        db,
        "  My   Shop ",
        domain="Shop.Example.COM/",
        cors=["https://shop.example.com", "*.Example.com", "shop.example.com:8080", "*.example.com"],
        timezone="Europe/Berlin",
        owner_user_id=owner.id,
        now=NOW,
    )
    assert project.id == "my-shop"
    assert (project.name, project.domain, project.timezone) == (
        "My Shop",
        "https://shop.example.com",
        "Europe/Berlin",
    )
    assert project.cors == ("https://shop.example.com", "*.example.com", "shop.example.com:8080")
    assert (project.filters, project.settings, project.allow_unsafe_revenue_tracking) == ((), {}, False)
    assert (project.created_at, project.updated_at) == (NOW, NOW)
    assert get_project(db, "my-shop") == project
    assert get_project(db, "nope") is None
    assert list_projects(db, user_id=owner.id) == [project]
    assert get_role(db, "my-shop", owner.id) == "owner"
    bare = create_project(db, "API only", domain=None, now=NOW)
    assert (bare.id, bare.domain, bare.timezone, bare.cors) == ("api-only", None, "UTC", ())
    assert [p.id for p in list_projects(db)] == ["api-only", "my-shop"]


def test_project_id_collision_gets_a_4_digit_suffix(db: MetaDB) -> None:
    first = create_project(db, "My Site", domain=None, now=NOW)
    second = create_project(db, "my site!", domain=None, now=NOW)
    third = create_project(db, "My Site", domain=None, now=NOW)
    assert first.id == "my-site"
    assert re.fullmatch(r"my-site-[1-9]\d{3}", second.id)
    assert re.fullmatch(r"my-site-[1-9]\d{3}", third.id)
    assert third.id != second.id


def test_slugify_examples() -> None:
    assert slugify("Ünïcode Café (EU)!") == "unicode-cafe-eu"
    assert slugify("!!!") == "project"
    assert slugify("日本") == "project"
    assert slugify("a" * 80 + " b") == "a" * 64


@given(st.text(max_size=100))
def test_slugify_always_yields_a_clean_idempotent_slug(name: str) -> None:
    slug = slugify(name)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
    assert len(slug) <= 64
    assert slugify(slug) == slug


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"timezone": "../../etc/passwd"}, "unknown timezone"),
        ({"timezone": "localtime"}, "unknown timezone"),
        ({"cors": ["https://a.example/path"]}, "must be an origin only"),
        ({"cors": ["javascript:alert(1)"]}, "only http:// and https:// are allowed"),
        ({"cors": ["https://user:pw@a.example"]}, "must not contain a user name or password"),
        ({"cors": ["exa mple.com"]}, "is not a valid host name"),
        ({"cors": "https://a.example"}, "cors must be a list of origins"),
        ({"domain": "ftp://a.example"}, "only http:// and https:// are allowed"),
        ({"domain": "*.example.com"}, "is not a valid host name"),
    ],
)
def test_create_project_rejects_bad_input(db: MetaDB, kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"domain": "example.com", **kwargs}
    with pytest.raises(MetaError, match=re.escape(message)):
        create_project(db, "Shop", **args)  # type: ignore[arg-type]
    assert list_projects(db) == []


def test_update_project_changes_only_given_fields_and_keeps_the_id(db: MetaDB) -> None:
    create_project(db, "Shop", domain="shop.example", cors=["shop.example"], now=NOW)
    later = NOW + timedelta(days=1)
    updated = update_project(
        db,
        "shop",
        name="Shop EU",
        domain=None,
        filters=[
            IpFilter(ip=" 203.0.113.7 "),
            {"type": "ip", "ip": "2001:db8::/32"},
            {"type": "profile_id", "profileId": "user-1"},
            EventFilter(
                name="screen_view",
                filters=(EventPropertyFilter(name="path", operator="startsWith", value=("/admin",)),),
            ),
        ],
        settings={"theme": "dark"},
        allow_unsafe_revenue_tracking=True,
        now=later,
    )
    assert (updated.id, updated.name, updated.domain, updated.cors) == (
        "shop",
        "Shop EU",
        None,
        ("shop.example",),
    )
    assert updated.filters == (
        IpFilter(ip="203.0.113.7"),
        IpFilter(ip="2001:db8::/32"),
        ProfileIdFilter(profile_id="user-1"),
        EventFilter(
            name="screen_view",
            filters=(EventPropertyFilter(name="path", operator="startsWith", value=("/admin",)),),
        ),
    )
    assert (updated.settings, updated.allow_unsafe_revenue_tracking) == ({"theme": "dark"}, True)
    assert (updated.created_at, updated.updated_at) == (NOW, later)
    assert get_project(db, "shop") == updated
    stored = db.query_one("SELECT filters FROM projects WHERE id = 'shop'")
    assert stored is not None
    assert '{"type":"profile_id","profileId":"user-1"}' in stored[0]
    assert update_project(db, "shop") == updated  # nothing to change


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([{"type": "ip", "ip": "999.1.1.1"}], "IP filter '999.1.1.1' is not an IP address or CIDR network"),
        ([{"type": "country", "code": "DE"}], "invalid project filter"),
        (
            [{"type": "event", "name": "x", "filters": [{"name": "p", "operator": "like"}]}],
            "invalid project filter",
        ),
        ([{"type": "profile_id", "profileId": " "}], "profile_id filter needs a non-empty profileId"),
    ],
)
def test_update_project_rejects_bad_filters(db: MetaDB, filters: list[object], message: str) -> None:
    create_project(db, "Shop", domain=None, now=NOW)
    with pytest.raises(MetaError, match=re.escape(message)):
        update_project(db, "shop", filters=filters)  # type: ignore[arg-type]
    project = get_project(db, "shop")
    assert project is not None and project.filters == ()


def test_update_and_delete_unknown_project(db: MetaDB) -> None:
    with pytest.raises(MetaError, match="^no project with id 'ghost'$"):
        update_project(db, "ghost", name="x")
    assert delete_project(db, "ghost") is False


def test_delete_project_cascades_to_clients_and_members(db: MetaDB) -> None:
    owner = create_user(db, "ada@example.com", PASSWORD, now=NOW)
    create_project(db, "Shop", domain=None, owner_user_id=owner.id, now=NOW)
    client, _ = create_client(db, "shop", now=NOW)
    assert delete_project(db, "shop") is True
    assert get_client(db, client.id) is None
    assert db.query("SELECT count(*) FROM project_members") == [(0,)]
    assert get_user(db, owner.id) == owner


# ------------------------------------------------------------------------------------------------
# clients


def test_create_client_returns_the_secret_once_and_stores_its_hash(db: MetaDB) -> None:
    create_project(db, "Shop", domain=None, now=NOW)
    client, secret = create_client(db, "shop", now=NOW)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", client.id)
    assert (client.name, client.type, client.project_id, client.created_at, client.revoked_at) == (
        "Shop Client",
        "write",
        "shop",
        NOW,
        None,
    )
    assert re.fullmatch(r"sec_[0-9a-f]{20}", secret)
    row = db.query_one("SELECT secret_hash FROM clients WHERE id = :id", {"id": client.id})
    assert row is not None and verify_secret(secret, row[0]) and secret not in row[0]
    assert get_client(db, client.id) == client
    assert get_client(db, "not-a-uuid") is None
    assert authenticate_client(db, client.id, secret) == client
    assert authenticate_client(db, client.id, "sec_00000000000000000000") is None
    assert authenticate_client(db, "not-a-uuid", secret) is None


def test_client_types_names_and_unknown_project(db: MetaDB) -> None:
    create_project(db, "Shop", domain=None, now=NOW)
    reader, _ = create_client(db, "shop", type="read", name=" Exporter ", now=NOW)
    assert (reader.name, reader.type) == ("Exporter", "read")
    with pytest.raises(MetaError, match="^client type must be one of write, read, root, not 'admin'$"):
        create_client(db, "shop", type="admin")  # type: ignore[arg-type]
    with pytest.raises(MetaError, match="^no project with id 'ghost'$"):
        create_client(db, "ghost")
    assert list_clients(db, "shop") == [reader]


def test_revoked_clients_fail_authentication(db: MetaDB) -> None:
    create_project(db, "Shop", domain=None, now=NOW)
    keep, _ = create_client(db, "shop", now=NOW)
    gone, secret = create_client(db, "shop", name="Old", now=NOW + timedelta(seconds=1))
    revoked = revoke_client(db, gone.id, now=NOW + timedelta(hours=1))
    assert revoked.revoked_at == NOW + timedelta(hours=1)
    assert revoked.active is False
    assert revoke_client(db, gone.id, now=NOW + timedelta(hours=2)).revoked_at == NOW + timedelta(hours=1)
    assert authenticate_client(db, gone.id, secret) is None
    assert list_clients(db, "shop") == [keep, revoked]
    assert list_clients(db, "shop", include_revoked=False) == [keep]
    with pytest.raises(MetaError, match="^no client with id 'ghost'$"):
        revoke_client(db, "ghost")
