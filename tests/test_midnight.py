"""Across midnight UTC: the salt rotates, a live visit keeps its device id, a new visit gets a new one,
and salts older than 48 h are gone (openpanel-facts §3.1–§3.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from openpanel_lite.ingest import identity
from openpanel_lite.ingest.identity import Salts
from openpanel_lite.ingest.pipeline import Pipeline, RequestInfo, Rows
from openpanel_lite.ingest.profiles import ProfileBook
from openpanel_lite.ingest.schemas import TrackPayload
from openpanel_lite.ingest.sessions import SessionTracker
from openpanel_lite.meta import projects
from openpanel_lite.meta import salts as salts_mod
from openpanel_lite.meta.db import MetaDB

UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/148.0.0.0 Safari/537.36"
)
IP = "81.2.69.142"


async def _no_profile(project_id: str, profile_id: str) -> None:
    return None


def _salts(db: MetaDB, now: datetime) -> Salts:
    s = salts_mod.rotate_salts(db, now)
    return Salts(current=s.current, previous=s.previous)


def test_visit_across_midnight_keeps_its_device_id(tmp_path: Path) -> None:
    db = MetaDB(tmp_path / "meta.sqlite")
    db.migrate()
    project = projects.create_project(db, "Night", domain="night.example")
    evening = datetime(2026, 6, 8, 23, 50, tzinfo=UTC)
    salts_mod.ensure_salts(db, evening - timedelta(days=3))
    before = _salts(db, evening)
    pipe = Pipeline(tracker=SessionTracker(), profiles=ProfileBook(_no_profile), geo=None, salts=before)

    def visit(at: datetime, path: str) -> str:
        req = RequestInfo(
            project=project,
            ip=IP,
            user_agent=UA,
            headers={"accept-language": "en", "sec-fetch-mode": "cors", "sec-ch-ua": "x"},
            secret_verified=False,
            sdk_name="web",
            sdk_version="1",
            received_at=at,
        )
        rows = Rows()
        pipe.track(
            req,
            TrackPayload(name="screen_view", properties={"__path": path}, profile_id=None, groups=()),
            rows,
        )
        return rows.events[-1].device_id

    first = visit(evening, "/a")
    assert first == identity.device_id(UA, IP, project.id, before.current)

    midnight = datetime(2026, 6, 9, 0, 0, tzinfo=UTC)
    pipe.salts = _salts(db, midnight)
    assert pipe.salts.previous == before.current and pipe.salts.current != before.current

    # 15 minutes later the visit is still live: the previous salt's id is kept.
    assert visit(evening + timedelta(minutes=15), "/b") == first
    # The same person an hour after the visit ended starts a new visit under the new salt.
    later = visit(midnight + timedelta(hours=2), "/c")
    assert later == identity.device_id(UA, IP, project.id, pipe.salts.current) != first

    # Salts: exactly two remain, none older than 48 h.
    rows = db.query("SELECT created_at FROM salts ORDER BY created_at")
    assert len(rows) == 2
    two_days_later = midnight + timedelta(hours=49)
    salts_mod.rotate_salts(db, two_days_later)
    ages = [
        two_days_later - datetime.fromtimestamp(r[0] / 1000, UTC)
        for r in db.query("SELECT created_at FROM salts")
    ]
    assert ages and all(age <= timedelta(hours=48) for age in ages)
    db.close()
