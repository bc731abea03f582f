"""Failed-login counters, bumped atomically *before* a password is checked (reliability.md §5).

Counting first means 50 parallel guesses cannot all slip past a "≤ 10 tries" check (Umami CVE race).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import msgspec

from openpanel_lite.meta.clock import to_ms
from openpanel_lite.meta.db import MetaDB

DEFAULT_WINDOW = timedelta(minutes=15)
DEFAULT_MAX_ATTEMPTS = 10


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool  # False: answer 429 without verifying the password
    attempts: int  # attempts in the current window, this one included
    retry_after_s: int  # seconds until the window resets (0 when allowed)


def _key_hash(key: str) -> str:
    # Keys such as "email:a@b.c" or "ip:1.2.3.4" are hashed so the table holds no addresses in clear.
    return hashlib.sha256(key.encode()).hexdigest()


def register_attempt(
    db: MetaDB,
    key: str,
    *,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Attempt:
    """Count one login attempt for ``key`` in a fixed window; at most ``max_attempts`` are allowed."""
    at = to_ms(now)
    window_ms = to_ms(now) - to_ms(now - window)
    # One statement, so concurrent attempts cannot read the same count (SQLite serialises writers).
    row = db.query_one(
        """-- sql
        INSERT INTO login_attempts (key_hash, window_start, attempts) VALUES (:key, :now, 1)
        ON CONFLICT (key_hash) DO UPDATE SET
            attempts = CASE WHEN window_start <= :now - :window THEN 1 ELSE attempts + 1 END,
            window_start = CASE WHEN window_start <= :now - :window THEN :now ELSE window_start END
        RETURNING attempts, window_start""",
        {"key": _key_hash(key), "now": at, "window": window_ms},
    )
    assert row is not None  # an upsert with RETURNING always yields the row
    attempts, window_start = int(row[0]), int(row[1])
    if attempts <= max_attempts:
        return Attempt(allowed=True, attempts=attempts, retry_after_s=0)
    retry_ms = window_start + window_ms - at
    return Attempt(allowed=False, attempts=attempts, retry_after_s=max(1, -(-retry_ms // 1000)))


def clear_attempts(db: MetaDB, key: str) -> None:
    """Forget the counter, e.g. after a successful login for an account key."""
    db.execute("DELETE FROM login_attempts WHERE key_hash = :key", {"key": _key_hash(key)})


def purge_attempts(db: MetaDB, *, now: datetime, window: timedelta = DEFAULT_WINDOW) -> int:
    """Delete counters whose window has ended (housekeeping)."""
    return db.execute(
        "DELETE FROM login_attempts WHERE window_start <= :cutoff", {"cutoff": to_ms(now - window)}
    )
