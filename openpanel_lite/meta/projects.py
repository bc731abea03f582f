"""Projects: the unit of tracking. The id is a slug of the name, as in OpenPanel, and never changes."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from openpanel_lite.meta.clock import from_ms, to_ms, utcnow
from openpanel_lite.meta.db import MetaDB, Row, SQLValue
from openpanel_lite.meta.errors import MetaError
from openpanel_lite.meta.members import add_member
from openpanel_lite.meta.project_filters import ProjectFilter, decode_filters, encode_filters, parse_filters
from openpanel_lite.meta.validation import (
    check_timezone,
    normalize_cors_entry,
    normalize_domain,
    normalize_name,
)

MAX_SLUG_LEN = 64
_NON_SLUG = re.compile(r"[^a-z0-9]+")
_SUFFIX_TRIES = 50


class Project(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    domain: str | None
    timezone: str
    cors: tuple[str, ...]
    filters: tuple[ProjectFilter, ...]
    settings: dict[str, Any]
    allow_unsafe_revenue_tracking: bool
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    "id, name, domain, timezone, cors, filters, settings, allow_unsafe_revenue_tracking, created_at,"
    " updated_at"
)


def _project(row: Row) -> Project:
    return Project(
        id=row[0],
        name=row[1],
        domain=row[2],
        timezone=row[3],
        cors=msgspec.json.decode(row[4], type=tuple[str, ...]),
        filters=decode_filters(row[5]),
        settings=msgspec.json.decode(row[6], type=dict[str, Any]),
        allow_unsafe_revenue_tracking=bool(row[7]),
        created_at=from_ms(row[8]),
        updated_at=from_ms(row[9]),
    )


def slugify(name: str) -> str:
    """``"My Shop (EU)"`` -> ``"my-shop-eu"``; accents fold to ASCII; ``"project"`` if nothing is left."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _NON_SLUG.sub("-", ascii_name.lower()).strip("-")
    return slug[:MAX_SLUG_LEN].rstrip("-") or "project"


def _free_id(db: MetaDB, name: str) -> str:
    """The slug, or slug-NNNN with a random 4-digit suffix while taken (OpenPanel's ``getId``)."""
    base = slugify(name)
    candidate = base
    for _ in range(_SUFFIX_TRIES):
        if db.query_one("SELECT 1 FROM projects WHERE id = :id", {"id": candidate}) is None:
            return candidate
        candidate = f"{base}-{1000 + secrets.randbelow(9000)}"
    raise MetaError(f"could not find a free project id for {name!r}; choose a more distinct name")


def _cors_json(cors: Iterable[str]) -> str:
    if isinstance(cors, str):
        raise MetaError("cors must be a list of origins, not a single string")
    entries = [normalize_cors_entry(e) for e in cors]
    return msgspec.json.encode(list(dict.fromkeys(entries))).decode()  # de-duplicated, order kept


def _domain(domain: str | None) -> str | None:
    return normalize_domain(domain) if domain is not None and domain.strip() else None


def create_project(
    db: MetaDB,
    name: str,
    *,
    domain: str | None,
    cors: Iterable[str] = (),
    timezone: str = "UTC",
    owner_user_id: str | None = None,
    now: datetime | None = None,
) -> Project:
    """Create a project (and make ``owner_user_id`` its owner); returns it with its new id."""
    at = to_ms(now or utcnow())
    params: dict[str, SQLValue] = {
        "name": normalize_name(name, what="project name"),
        "domain": _domain(domain),
        "timezone": check_timezone(timezone),
        "cors": _cors_json(cors),
        "at": at,
    }
    with db.transaction():
        params["id"] = project_id = _free_id(db, str(params["name"]))
        db.execute(
            """-- sql
            INSERT INTO projects (id, name, domain, timezone, cors, created_at, updated_at)
            VALUES (:id, :name, :domain, :timezone, :cors, :at, :at)""",
            params,
        )
        if owner_user_id is not None:
            add_member(db, project_id, owner_user_id, role="owner", now=now)
        project = get_project(db, project_id)
    assert project is not None  # inserted above in the same transaction
    return project


def get_project(db: MetaDB, project_id: str) -> Project | None:
    row = db.query_one(f"SELECT {_COLUMNS} FROM projects WHERE id = :id", {"id": project_id})
    return _project(row) if row else None


def list_projects(db: MetaDB, *, user_id: str | None = None) -> list[Project]:
    """All projects by name, or only those ``user_id`` is a member of."""
    if user_id is None:
        rows = db.query(f"SELECT {_COLUMNS} FROM projects ORDER BY name, id")
    else:
        rows = db.query(
            f"""-- sql
            SELECT {_COLUMNS} FROM projects
            WHERE id IN (SELECT project_id FROM project_members WHERE user_id = :user_id)
            ORDER BY name, id""",
            {"user_id": user_id},
        )
    return [_project(r) for r in rows]


def update_project(
    db: MetaDB,
    project_id: str,
    *,
    name: str | UnsetType = UNSET,
    domain: str | None | UnsetType = UNSET,
    cors: Iterable[str] | UnsetType = UNSET,
    timezone: str | UnsetType = UNSET,
    filters: Iterable[ProjectFilter | Mapping[str, Any]] | UnsetType = UNSET,
    settings: Mapping[str, Any] | UnsetType = UNSET,
    allow_unsafe_revenue_tracking: bool | UnsetType = UNSET,
    now: datetime | None = None,
) -> Project:
    """Change the given fields (others stay); the id is kept even when the name changes.

    ``filters`` may be filter Structs or their JSON form (``{"type": "ip", "ip": …}``).
    """
    # Column names come from this fixed mapping only, never from input.
    changes: dict[str, SQLValue] = {}
    if not isinstance(name, UnsetType):
        changes["name"] = normalize_name(name, what="project name")
    if not isinstance(domain, UnsetType):
        changes["domain"] = _domain(domain)
    if not isinstance(cors, UnsetType):
        changes["cors"] = _cors_json(cors)
    if not isinstance(timezone, UnsetType):
        changes["timezone"] = check_timezone(timezone)
    if not isinstance(filters, UnsetType):
        changes["filters"] = encode_filters(parse_filters(filters))
    if not isinstance(settings, UnsetType):
        if not isinstance(settings, Mapping):
            raise MetaError("settings must be a JSON object")
        changes["settings"] = msgspec.json.encode(dict(settings)).decode()
    if not isinstance(allow_unsafe_revenue_tracking, UnsetType):
        changes["allow_unsafe_revenue_tracking"] = int(bool(allow_unsafe_revenue_tracking))
    assignments = ", ".join(f"{column} = :{column}" for column in changes)
    with db.transaction():
        if changes:
            changed = db.execute(
                f"UPDATE projects SET {assignments}, updated_at = :updated_at WHERE id = :id",
                {**changes, "updated_at": to_ms(now or utcnow()), "id": project_id},
            )
            if changed == 0:
                raise MetaError(f"no project with id {project_id!r}")
        project = get_project(db, project_id)
    if project is None:
        raise MetaError(f"no project with id {project_id!r}")
    return project


def delete_project(db: MetaDB, project_id: str) -> bool:
    """Delete the project's metadata (clients, members, dashboards, reports, webhooks cascade).

    Its events live in the event store and must be deleted there separately.
    """
    return db.execute("DELETE FROM projects WHERE id = :id", {"id": project_id}) > 0
