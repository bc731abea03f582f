"""Daily salts for anonymous device ids (openpanel-facts §3.2): current + previous, none older than 48 h.

Call ``ensure_salts`` at start-up and ``rotate_salts`` at start-up and every 00:00 UTC; both are
idempotent, so a restart or a missed midnight never produces extra salts.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import msgspec

from openpanel_lite.meta.clock import to_ms
from openpanel_lite.meta.db import MetaDB
from openpanel_lite.meta.errors import MetaError

MAX_SALT_AGE = timedelta(hours=48)


class Salts(msgspec.Struct, frozen=True):
    current: str
    previous: str


def _new_salt() -> str:
    return secrets.token_hex(16)


def _insert(db: MetaDB, created: datetime) -> None:
    db.execute(
        "INSERT INTO salts (salt, created_at) VALUES (:salt, :at)",
        {"salt": _new_salt(), "at": to_ms(created)},
    )


def _newest_created_ms(db: MetaDB) -> int | None:
    row = db.query_one("SELECT max(created_at) FROM salts")
    return int(row[0]) if row and row[0] is not None else None


def get_salts(db: MetaDB) -> Salts:
    """Newest salt as ``current``, the one before as ``previous`` (the newest again if it is alone)."""
    rows = db.query("SELECT salt FROM salts ORDER BY created_at DESC, salt LIMIT 2")
    if not rows:
        raise MetaError("no salts yet; ensure_salts() must run at start-up")
    return Salts(current=rows[0][0], previous=rows[-1][0])


def ensure_salts(db: MetaDB, now: datetime) -> Salts:
    """On first boot create two salts, the previous one backdated 24 h (OpenPanel ``createInitialSalts``)."""
    with db.transaction():
        if _newest_created_ms(db) is None:
            _insert(db, now - timedelta(hours=24))
            _insert(db, now)
        return get_salts(db)


def rotate_salts(db: MetaDB, now: datetime) -> Salts:
    """Add today's salt unless it exists (made at or after 00:00 UTC of ``now``), then prune.

    Pruning keeps at most the two newest salts and deletes any salt older than 48 h, so after a long
    downtime the previous salt may be gone and ``previous`` equals ``current``.
    """
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with db.transaction():
        newest = _newest_created_ms(db)
        if newest is None or newest < to_ms(midnight):
            _insert(db, now)
        db.execute(
            """-- sql
            DELETE FROM salts
            WHERE created_at < :cutoff
               OR salt NOT IN (SELECT salt FROM salts ORDER BY created_at DESC, salt LIMIT 2)""",
            {"cutoff": to_ms(now - MAX_SALT_AGE)},
        )
        return get_salts(db)
