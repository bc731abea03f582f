"""Dashboard login sessions. The cookie token is returned once; the table keys rows by its SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import msgspec

from openpanel_lite.meta.clock import from_ms, to_ms, utcnow
from openpanel_lite.meta.db import MetaDB, Row
from openpanel_lite.meta.errors import MetaError


class LoginSession(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # hex SHA-256 of the token: safe to log or show, useless as a cookie
    user_id: str
    created_at: datetime
    expires_at: datetime
    csrf_seed: str  # CSRF token = HMAC(auth secret key, csrf_seed), made by the web layer


_COLUMNS = "id, user_id, created_at, expires_at, csrf_seed"


def _session(row: Row) -> LoginSession:
    return LoginSession(
        id=row[0], user_id=row[1], created_at=from_ms(row[2]), expires_at=from_ms(row[3]), csrf_seed=row[4]
    )


def token_id(token: str) -> str:
    """The stored id of a token. A plain hash suffices: tokens carry 256 random bits, so no KDF is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_login_session(
    db: MetaDB, user_id: str, *, ttl: timedelta, now: datetime | None = None
) -> tuple[LoginSession, str]:
    """A new session for ``user_id`` and its plaintext cookie token (shown once, never stored).

    Create a fresh session at every login (never reuse one from before), which defeats fixation.
    """
    if ttl <= timedelta(0):
        raise MetaError("a login session needs a positive lifetime")
    token = secrets.token_urlsafe(32)
    start = now or utcnow()
    session = LoginSession(
        id=token_id(token),
        user_id=user_id,
        created_at=from_ms(to_ms(start)),
        expires_at=from_ms(to_ms(start + ttl)),
        csrf_seed=secrets.token_hex(16),
    )
    with db.transaction():
        if db.query_one("SELECT 1 FROM users WHERE id = :id", {"id": user_id}) is None:
            raise MetaError(f"no user with id {user_id!r}")
        db.execute(
            """-- sql
            INSERT INTO login_sessions (id, user_id, created_at, expires_at, csrf_seed)
            VALUES (:id, :user_id, :created_at, :expires_at, :csrf_seed)""",
            {
                "id": session.id,
                "user_id": user_id,
                "created_at": to_ms(session.created_at),
                "expires_at": to_ms(session.expires_at),
                "csrf_seed": session.csrf_seed,
            },
        )
    return session, token


def get_login_session(db: MetaDB, token: str, *, now: datetime | None = None) -> LoginSession | None:
    """The live session for a cookie token; None if unknown, logged out or expired."""
    row = db.query_one(
        f"SELECT {_COLUMNS} FROM login_sessions WHERE id = :id AND expires_at > :now",
        {"id": token_id(token), "now": to_ms(now or utcnow())},
    )
    return _session(row) if row else None


def delete_login_session(db: MetaDB, token: str) -> bool:
    """Log out one session; True if it existed."""
    return db.execute("DELETE FROM login_sessions WHERE id = :id", {"id": token_id(token)}) > 0


def delete_sessions_for_user(db: MetaDB, user_id: str) -> int:
    """Log a user out everywhere (after a password change, for instance); returns the count."""
    return db.execute("DELETE FROM login_sessions WHERE user_id = :user_id", {"user_id": user_id})


def purge_expired_sessions(db: MetaDB, now: datetime | None = None) -> int:
    """Delete expired rows (housekeeping; expired sessions are already refused by lookups)."""
    return db.execute("DELETE FROM login_sessions WHERE expires_at <= :now", {"now": to_ms(now or utcnow())})
