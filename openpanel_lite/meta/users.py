"""Dashboard users: accounts with an email and an argon2id password hash."""

from __future__ import annotations

import uuid
from datetime import datetime

import apsw
import msgspec

from openpanel_lite.meta.clock import from_ms, to_ms, utcnow
from openpanel_lite.meta.db import MetaDB, Row
from openpanel_lite.meta.errors import MetaError
from openpanel_lite.meta.secrets import burn_password_check, hash_password, needs_rehash, verify_password
from openpanel_lite.meta.validation import normalize_email, normalize_name


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    email: str
    name: str | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = "id, email, name, created_at, updated_at"


def _user(row: Row) -> User:
    return User(id=row[0], email=row[1], name=row[2], created_at=from_ms(row[3]), updated_at=from_ms(row[4]))


def create_user(
    db: MetaDB, email: str, password: str, *, name: str | None = None, now: datetime | None = None
) -> User:
    """Create an account; the email must be unused and the password 8..255 characters."""
    address = normalize_email(email)
    display_name = normalize_name(name, what="user name") if name is not None and name.strip() else None
    password_hash = hash_password(password)
    at = to_ms(now or utcnow())
    params = {
        "id": str(uuid.uuid4()),
        "email": address,
        "name": display_name,
        "password_hash": password_hash,
        "at": at,
    }
    try:
        with db.transaction():
            if db.query_one("SELECT 1 FROM users WHERE email = :email", {"email": address}):
                raise MetaError(f"a user with email {address} already exists")
            db.execute(
                """-- sql
                INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
                VALUES (:id, :email, :name, :password_hash, :at, :at)""",
                params,
            )
    except apsw.ConstraintError:
        # Another connection won the race between our check and our insert.
        raise MetaError(f"a user with email {address} already exists") from None
    return User(
        id=str(params["id"]), email=address, name=display_name, created_at=from_ms(at), updated_at=from_ms(at)
    )


def get_user(db: MetaDB, user_id: str) -> User | None:
    row = db.query_one(f"SELECT {_COLUMNS} FROM users WHERE id = :id", {"id": user_id})
    return _user(row) if row else None


def get_user_by_email(db: MetaDB, email: str) -> User | None:
    """Case-insensitive lookup; an address that is not even valid finds nobody."""
    try:
        address = normalize_email(email)
    except MetaError:
        return None
    row = db.query_one(f"SELECT {_COLUMNS} FROM users WHERE email = :email", {"email": address})
    return _user(row) if row else None


def list_users(db: MetaDB) -> list[User]:
    return [_user(r) for r in db.query(f"SELECT {_COLUMNS} FROM users ORDER BY created_at, email")]


def count_users(db: MetaDB) -> int:
    row = db.query_one("SELECT count(*) FROM users")
    return int(row[0]) if row else 0


def authenticate(db: MetaDB, email: str, password: str) -> User | None:
    """The user whose email and password match, else None; upgrades an outdated hash on success.

    Rate limiting is the caller's job (see login_throttle): call it *before* this function.
    """
    try:
        address = normalize_email(email)
    except MetaError:
        address = None
    row = None
    if address is not None:
        row = db.query_one(
            f"SELECT {_COLUMNS}, password_hash FROM users WHERE email = :email", {"email": address}
        )
    if row is None:
        # Spend the same time as a real check so response times do not reveal which emails exist.
        burn_password_check(password)
        return None
    stored = str(row[5])
    if not verify_password(password, stored):
        return None
    if needs_rehash(stored):
        db.execute(
            "UPDATE users SET password_hash = :hash WHERE id = :id",
            {"hash": hash_password(password), "id": row[0]},
        )
    return _user(row)


def set_password(db: MetaDB, user_id: str, password: str, *, now: datetime | None = None) -> None:
    """Replace a user's password. Callers should also end the user's login sessions."""
    changed = db.execute(
        "UPDATE users SET password_hash = :hash, updated_at = :at WHERE id = :id",
        {"hash": hash_password(password), "at": to_ms(now or utcnow()), "id": user_id},
    )
    if changed == 0:
        raise MetaError(f"no user with id {user_id!r}")
