"""Reads the ingest pipeline needs from the event store: a profile's latest row, and the sessions
still open at startup. Each runs in a worker thread; the SQL is written for any dialect.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec

from openpanel_lite.ingest.profiles import Loader
from openpanel_lite.storage import EventStore
from openpanel_lite.storage.columns import column_names
from openpanel_lite.storage.dialects import ParamKind
from openpanel_lite.storage.rows import EventRow, ProfileRow, SessionRow

_PROFILE_COLUMNS = column_names("profiles")
_SESSION_COLUMNS = column_names("sessions")
# What SessionTracker.restore_views needs of a stored screen view.
_VIEW_COLUMNS = ("id", "name", "project_id", "session_id", "profile_id", "origin", "path", "created_at")


def _row_dict(names: tuple[str, ...], values: tuple[object, ...]) -> dict[str, object]:
    out = dict(zip(names, values, strict=True))
    for key, value in out.items():
        if isinstance(value, list):
            out[key] = tuple(value)
        elif isinstance(value, datetime) and value.tzinfo is None:
            # The store keeps naive UTC; the pipeline compares with aware datetimes.
            out[key] = value.replace(tzinfo=UTC)
    return out


def load_profile(store: EventStore, project_id: str, profile_id: str) -> ProfileRow | None:
    """The newest stored row of a profile (profiles behave like ReplacingMergeTree(last_seen_at))."""
    d = store.dialect
    project, pid = d.param("project_id", ParamKind.STRING), d.param("id", ParamKind.STRING)
    sql = (
        f"SELECT {', '.join(_PROFILE_COLUMNS)} FROM profiles WHERE project_id = {project} AND id = {pid} "
        "ORDER BY last_seen_at DESC LIMIT 1"
    )
    rows = store.fetch(sql, {"project_id": project_id, "id": profile_id})
    if not rows:
        return None
    return msgspec.convert(_row_dict(_PROFILE_COLUMNS, rows[0]), ProfileRow, strict=False)


def profile_loader(store: EventStore) -> Loader:
    """The ProfileBook's miss path: load_profile in a worker thread."""

    async def load(project_id: str, profile_id: str) -> ProfileRow | None:
        return await asyncio.to_thread(load_profile, store, project_id, profile_id)

    return load


def open_sessions(store: EventStore, now: datetime, timeout_ms: int) -> list[SessionRow]:
    """Sessions whose newest live version ended within the timeout: the ones a restart must resume.

    A session's live state is its highest version with sign +1 that no -1 row of the same version
    cancels (sum(sign) per version is 1).
    """
    d = store.dialect
    cols = ", ".join(_SESSION_COLUMNS)
    since = now - timedelta(milliseconds=timeout_ms)
    sql = f"""-- sql
        WITH live AS (
            SELECT id, version FROM sessions
            WHERE ended_at >= {d.param("since", ParamKind.TIMESTAMP)}
            GROUP BY id, version HAVING sum(sign) = 1
        ), newest AS (SELECT id, max(version) AS version FROM live GROUP BY id)
        SELECT {cols} FROM sessions s
        WHERE s.sign = 1 AND (s.id, s.version) IN (SELECT id, version FROM newest)
    """
    rows = store.fetch(sql, {"since": since.replace(tzinfo=None)})
    return [msgspec.convert(_row_dict(_SESSION_COLUMNS, r), SessionRow, strict=False) for r in rows]


def session_views(store: EventStore, sessions: list[SessionRow]) -> list[EventRow]:
    """The stored screen views of resumed sessions, oldest first, so that time on page and the Pages
    rows carry on across a restart (SessionTracker.restore_views)."""
    if not sessions:
        return []
    d = store.dialect
    since = min(s.created_at for s in sessions).astimezone(UTC).replace(tzinfo=None)
    ended = min(s.ended_at for s in sessions).astimezone(UTC).replace(tzinfo=None)
    wanted = {(s.project_id, s.id) for s in sessions}
    # Only the views of sessions still open (their last version ended no earlier than the oldest
    # resumed one's): a busy site's other sessions since `since` are not read into memory.
    sql = f"""-- sql
        SELECT {", ".join(_VIEW_COLUMNS)} FROM events
        WHERE name = 'screen_view' AND created_at >= {d.param("since", ParamKind.TIMESTAMP)}
          AND session_id IN (
            SELECT id FROM sessions WHERE ended_at >= {d.param("ended", ParamKind.TIMESTAMP)}
          )
        ORDER BY created_at
    """
    views = (_row_dict(_VIEW_COLUMNS, r) for r in store.fetch(sql, {"since": since, "ended": ended}))
    return [
        msgspec.convert(v, EventRow, strict=False)
        for v in views
        if (v["project_id"], v["session_id"]) in wanted
    ]
