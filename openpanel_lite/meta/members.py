"""Project membership: which dashboard user may see which project, as owner or member."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

import msgspec

from openpanel_lite.meta.clock import from_ms, to_ms, utcnow
from openpanel_lite.meta.db import MetaDB, Row, SQLValue
from openpanel_lite.meta.errors import MetaError

Role = Literal["owner", "member"]
ROLES: tuple[Role, ...] = get_args(Role)


class Member(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    user_id: str
    email: str
    name: str | None
    role: Role
    created_at: datetime


_SELECT = """-- sql
    SELECT m.project_id, m.user_id, u.email, u.name, m.role, m.created_at
    FROM project_members AS m JOIN users AS u ON u.id = m.user_id"""


def _member(row: Row) -> Member:
    return Member(
        project_id=row[0], user_id=row[1], email=row[2], name=row[3], role=row[4], created_at=from_ms(row[5])
    )


def _owner_count(db: MetaDB, project_id: str) -> int:
    row = db.query_one(
        "SELECT count(*) FROM project_members WHERE project_id = :p AND role = 'owner'", {"p": project_id}
    )
    return int(row[0]) if row else 0


def add_member(
    db: MetaDB, project_id: str, user_id: str, *, role: Role = "member", now: datetime | None = None
) -> Member:
    """Give a user access to a project, or change the role of an existing member."""
    if role not in ROLES:
        raise MetaError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    params: dict[str, SQLValue] = {"p": project_id, "u": user_id, "role": role, "at": to_ms(now or utcnow())}
    with db.transaction():
        if db.query_one("SELECT 1 FROM projects WHERE id = :p", params) is None:
            raise MetaError(f"no project with id {project_id!r}")
        if db.query_one("SELECT 1 FROM users WHERE id = :u", params) is None:
            raise MetaError(f"no user with id {user_id!r}")
        current = get_role(db, project_id, user_id)
        if current == "owner" and role != "owner" and _owner_count(db, project_id) == 1:
            raise MetaError(f"cannot demote the last owner of project {project_id!r}")
        # The upsert keeps the original created_at when only the role changes.
        db.execute(
            """-- sql
            INSERT INTO project_members (project_id, user_id, role, created_at) VALUES (:p, :u, :role, :at)
            ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role""",
            params,
        )
        row = db.query_one(f"{_SELECT} WHERE m.project_id = :p AND m.user_id = :u", params)
    assert row is not None  # inserted just above, inside the same transaction
    return _member(row)


def list_members(db: MetaDB, project_id: str) -> list[Member]:
    """Owners first, then members, each by email."""
    rows = db.query(
        f"{_SELECT} WHERE m.project_id = :p ORDER BY m.role = 'member', u.email", {"p": project_id}
    )
    return [_member(r) for r in rows]


def get_role(db: MetaDB, project_id: str, user_id: str) -> Role | None:
    """The user's role in the project, or None when they have no access."""
    row = db.query_one(
        "SELECT role FROM project_members WHERE project_id = :p AND user_id = :u",
        {"p": project_id, "u": user_id},
    )
    if row is None:
        return None
    role: Role = row[0]
    return role


def remove_member(db: MetaDB, project_id: str, user_id: str) -> bool:
    """Revoke access; refuses to remove the last owner. False if the user was not a member."""
    with db.transaction():
        role = get_role(db, project_id, user_id)
        if role is None:
            return False
        if role == "owner" and _owner_count(db, project_id) == 1:
            raise MetaError(f"cannot remove the last owner of project {project_id!r}")
        db.execute(
            "DELETE FROM project_members WHERE project_id = :p AND user_id = :u",
            {"p": project_id, "u": user_id},
        )
    return True
