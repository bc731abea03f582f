"""GDPR erase inside the spool: spooled records are rewritten without the rows of one profile, so an
erased profile never reaches the store by replay (reliability §5, S15).

The same rule as EventStore.erase_profile: the profile's own rows, its sessions, and every event of
those sessions (the anonymous page views of a visit before its identify carry the device id).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from openpanel_lite.ingest.spool import Spool, SpoolRecord


class ProfileErasure:
    """Which rows belong to one profile; `sessions` grows as records reveal more of its visits."""

    def __init__(self, project_id: str, profile_id: str, sessions: Iterable[str] = ()) -> None:
        self.project_id = project_id
        self.profile_id = profile_id
        self.sessions: set[str] = set(sessions)

    def learn(self, record: SpoolRecord) -> None:
        """Note the sessions this record shows the profile in."""
        pid, prof = self.project_id, self.profile_id
        self.sessions.update(
            e.session_id
            for e in record.events
            if e.project_id == pid and e.profile_id == prof and e.session_id
        )
        self.sessions.update(s.id for s in record.sessions if s.project_id == pid and s.profile_id == prof)
        self.sessions.update(
            link.session_id
            for link in record.profile_links
            if link.project_id == pid and link.profile_id == prof
        )

    def strip(self, record: SpoolRecord) -> SpoolRecord | None:
        """The record without the profile's rows; None when nothing in it was the profile's."""
        pid, prof, sessions = self.project_id, self.profile_id, self.sessions
        events = tuple(
            e
            for e in record.events
            if not (e.project_id == pid and (e.profile_id == prof or e.session_id in sessions))
        )
        session_rows = tuple(
            s
            for s in record.sessions
            if not (s.project_id == pid and (s.profile_id == prof or s.id in sessions))
        )
        profiles = tuple(p for p in record.profiles if not (p.project_id == pid and p.id == prof))
        links = tuple(
            link for link in record.profile_links if not (link.project_id == pid and link.profile_id == prof)
        )
        durations = tuple(
            d for d in record.view_durations if not (d.project_id == pid and d.session_id in sessions)
        )
        page_views = tuple(
            v
            for v in record.page_views
            if not (v.project_id == pid and (v.profile_id == prof or v.session_id in sessions))
        )
        if (len(events), len(session_rows), len(profiles), len(links), len(durations), len(page_views)) == (
            len(record.events),
            len(record.sessions),
            len(record.profiles),
            len(record.profile_links),
            len(record.view_durations),
            len(record.page_views),
        ):
            return None
        return msgspec.structs.replace(
            record,
            events=events,
            sessions=session_rows,
            profiles=profiles,
            profile_links=links,
            view_durations=durations,
            page_views=page_views,
        )


def erase_from_spool(spool: Spool, erasure: ProfileErasure, *, page: int = 500) -> int:
    """Rewrite every spooled record that holds the profile's rows; returns how many records changed.

    Two passes: the first learns all the profile's sessions, so an anonymous session_start spooled
    before the identify is caught too. Records keep their seq (the watermark logic is untouched);
    one emptied of all rows still replays as an empty batch. Call `spool.file.compact()` afterwards
    so the old bytes leave the file.
    """
    for _, record in spool.pending_after(0, page=page):
        erasure.learn(record)
    encoder = msgspec.msgpack.Encoder(uuid_format="bytes")
    changed: list[tuple[int, bytes]] = []
    total = 0
    for seq, record in spool.pending_after(0, page=page):
        stripped = erasure.strip(record)
        if stripped is not None:
            changed.append((seq, encoder.encode(stripped)))
        if len(changed) >= page:
            spool.file.replace_bodies(changed)
            total += len(changed)
            changed = []
    if changed:
        spool.file.replace_bodies(changed)
        total += len(changed)
    spool.file.drop_dead_letters_containing(erasure.profile_id.encode())
    return total
