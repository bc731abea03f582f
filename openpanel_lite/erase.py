"""GDPR erase of one profile (reliability §5, S15): from the event store (events, sessions, profiles,
then a rewrite of its file), from the spool (records rewritten, file vacuumed, WAL truncated) and from
the ingest's memory (cached profile, live sessions).

Two entry points, because DuckDB lets only one process open the event store:
- `erase_live` runs inside the server (the dashboard's Erase button);
- `erase_offline` is the CLI's: it needs the server stopped and says so when the store is locked.
"""

from __future__ import annotations

import msgspec

from openpanel_lite import paths
from openpanel_lite.config import Config
from openpanel_lite.ingest.setup import IngestRuntime
from openpanel_lite.ingest.spool import Spool
from openpanel_lite.ingest.spool_erase import ProfileErasure, erase_from_spool
from openpanel_lite.logs import log
from openpanel_lite.storage import EventStore, open_store


class EraseResult(msgspec.Struct, frozen=True):
    project_id: str
    profile_id: str
    store_rows_deleted: int
    spool_records_rewritten: int


class StoreInUse(Exception):
    """The event store is held by a running server."""


def _forget_in_memory(ingest: IngestRuntime, erasure: ProfileErasure) -> None:
    """Drop the cached profile and its live sessions: a later update of an erased session would
    write a cancel row (-1) for a version that no longer exists."""
    ingest.pipeline.profiles.forget(erasure.project_id, erasure.profile_id)
    tracker = ingest.tracker
    # NOTE: SessionTracker has no public removal; its two maps are read here rather than changing
    # the ingest hot-path module for an admin action.
    for key, live in list(tracker._live.items()):
        row = live.row
        if row.project_id == erasure.project_id and (
            row.profile_id == erasure.profile_id or row.id in erasure.sessions
        ):
            del tracker._live[key]
    tracker._by_profile.pop((erasure.project_id, erasure.profile_id), None)


async def erase_live(ingest: IngestRuntime, project_id: str, profile_id: str) -> EraseResult:
    """Erase while the server runs: under the store writer's lock, so no batch is written meanwhile."""
    erasure = ProfileErasure(project_id, profile_id)
    store = ingest.store
    rewritten, deleted = await ingest.writer.erase_profile(
        erasure, lambda: store.erase_profile(project_id, profile_id)
    )
    _forget_in_memory(ingest, erasure)
    log("profile_erased", project_id=project_id, rows=deleted, spool_records=rewritten)
    return EraseResult(project_id, profile_id, deleted, rewritten)


def _open_store_alone(cfg: Config) -> EventStore:
    try:
        return open_store(cfg)
    except Exception as e:
        if "lock" in str(e).lower():
            raise StoreInUse(
                "the event store is in use by a running server; stop it first, or erase the profile "
                "from its dashboard (profile page → Erase)"
            ) from None
        raise


def erase_offline(cfg: Config, project_id: str, profile_id: str) -> EraseResult:
    """Erase with no server running (the CLI). Raises StoreInUse when a server holds the store."""
    store = _open_store_alone(cfg)
    try:
        spool = Spool(paths.spool_path(cfg.data_dir), min_free_bytes=0, min_free_ratio=0.0)
        try:
            erasure = ProfileErasure(project_id, profile_id)
            rewritten = erase_from_spool(spool, erasure)
            deleted = store.erase_profile(project_id, profile_id)
            spool.file.compact()
        finally:
            spool.close()
    finally:
        store.close()
    log("profile_erased", project_id=project_id, rows=deleted, spool_records=rewritten)
    return EraseResult(project_id, profile_id, deleted, rewritten)
