"""S15 (reliability.md §7): GDPR erase of one profile, from the dashboard of a running server and from
the CLI with the server stopped. The profile's events sit in DuckDB (checkpointed), in the store
writer's memory and in the spool at the same time; after the erase no row of the profile is left in
any table or spooled record, another profile is untouched, and a marker string sent only in the
erased profile's events is absent from the raw bytes of every file in the data dir (it is present
before: the control that makes the grep mean something).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from openpanel_lite.config import Config
from openpanel_lite.ingest.spool import SpoolRecord
from openpanel_lite.meta import members, users
from openpanel_lite.storage.file_guard import FileGuard
from tests.dashboard_support import ADMIN_EMAIL, logged_in, login
from tests.harness import LiveServer
from tests.ingest_support import Site, live_config

REPO = Path(__file__).resolve().parents[2]
MARK_WEB = "S15-ERASE-ME-7f3a9c"  # only in the events of the profile erased from the dashboard
MARK_CLI = "S15-ERASE-CLI-51be20"  # only in the events of the profile erased with the CLI
KEEP = "S15-KEEP-ME-0d4e11"  # in the other profile's events: must survive


def erase_config(tmp_path: Path) -> Config:
    # Nothing reaches the store unless the test flushes: records stay in memory and spool.
    return live_config(tmp_path, ingest__flush_interval_ms=600_000)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(erase_config(tmp_path))
    yield srv
    srv.stop()


def visit(site: Site, profile: str, marker: str, pages: int, ua: str, first: int = 0) -> None:
    """An identified visitor: identify (email carries the marker), then page views and a custom event.

    Pages are numbered from `first`, so a second visit sends bodies of its own (never a duplicate)."""
    headers = {"User-Agent": ua}
    reply = site.track(
        {"type": "identify", "payload": {"profileId": profile, "email": f"{marker}@example.com"}}, **headers
    )
    assert reply.status == 200, reply.text
    for n in range(first, first + pages):
        event = {
            "name": "screen_view" if n % 2 == 0 else "note",
            "profileId": profile,
            "properties": {"__path": f"https://example.com/{marker}/{n}", "note": f"{marker} {n}"},
        }
        assert site.track({"type": "track", "payload": event}, **headers).status == 200


_GREP = """
import json, sys
from pathlib import Path
needle = sys.argv[2].encode()
hits = {p.name: p.read_bytes().count(needle) for p in sorted(Path(sys.argv[1]).rglob("*")) if p.is_file()}
print(json.dumps({k: v for k, v in hits.items() if v}))
"""


def marker_hits(data_dir: Path, marker: str) -> dict[str, int]:
    """Occurrences of the marker's bytes in every file of the data dir (journals and WALs included).

    Read in a child process: closing a file descriptor of events.duckdb in the server's own process
    would drop DuckDB's POSIX lock on it (fcntl locks belong to the process, not the descriptor).
    """
    out = subprocess.run(
        [sys.executable, "-c", _GREP, str(data_dir), marker], capture_output=True, text=True, check=True
    )
    hits: dict[str, int] = msgspec.json.decode(out.stdout)
    return hits


def spooled_profiles(data_dir: Path) -> set[str]:
    import sqlite3

    decoder = msgspec.msgpack.Decoder(SpoolRecord)
    with sqlite3.connect(data_dir / "spool.sqlite") as db:
        bodies = [row[0] for row in db.execute("SELECT body FROM spool")]
    out: set[str] = set()
    for body in bodies:
        record = decoder.decode(body)
        out |= {e.profile_id for e in record.events} | {p.id for p in record.profiles}
        out |= {s.profile_id for s in record.sessions}
    return out


def counts(server: LiveServer, project_id: str, profile: str) -> tuple[int, int, int]:
    store = server.runtime.store
    p = {"project": project_id, "profile": profile}
    ev = store.fetch("SELECT count(*) FROM events WHERE project_id = $project AND profile_id = $profile", p)
    se = store.fetch("SELECT count(*) FROM sessions WHERE project_id = $project AND profile_id = $profile", p)
    pr = store.fetch("SELECT count(*) FROM profiles WHERE project_id = $project AND id = $profile", p)
    return int(ev[0][0]), int(se[0][0]), int(pr[0][0])


CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/148.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15"
)


def test_s15_erase_from_dashboard_and_cli_leaves_no_row_and_no_byte(
    live: LiveServer, request: pytest.FixtureRequest
) -> None:
    server = live
    site = Site(server)
    pid = site.project.id
    data_dir = server.cfg.data_dir
    writer = server.runtime.ingest.writer

    # Part of each profile's events reach DuckDB and a checkpoint; the rest stay in memory + spool.
    visit(site, "erase-me", MARK_WEB, 6, CHROME)
    visit(site, "keep-me", KEEP, 4, FIREFOX)
    visit(site, "erase-cli", MARK_CLI, 4, SAFARI)
    server.flush()
    assert server.call(writer.checkpoint()) is True
    # The store's file guard (what `openpanel backup` takes) held exclusively until just before the
    # erase: the writer cannot write these visits, so they are in its memory and in the spool.
    guard = FileGuard(data_dir / "events.duckdb")
    held = contextlib.ExitStack()
    held.enter_context(guard.exclusive(timeout_s=30))
    # Released however the test ends (before the server's teardown, which needs the writer).
    request.addfinalizer(guard.close)
    request.addfinalizer(held.close)
    visit(site, "erase-me", MARK_WEB, 4, CHROME, first=6)
    visit(site, "keep-me", KEEP, 2, FIREFOX, first=4)
    assert "erase-me" in spooled_profiles(data_dir)
    # The control: before the erase the marker is in the store's file and in the spool.
    before = marker_hits(data_dir, MARK_WEB)
    in_spool = sum(n for name, n in before.items() if name.startswith("spool.sqlite"))
    assert before.get("events.duckdb", 0) > 0 and in_spool > 0, before
    stored_before = server.runtime.store.fetch(
        "SELECT count(*) FROM events WHERE profile_id = 'erase-me'", {}
    )[0][0]
    assert stored_before > 0

    # Dashboard: the owner sees the Erase section and a confirm page; a non-owner member does not.
    owner = logged_in(server)
    admin = users.get_user_by_email(server.runtime.meta, ADMIN_EMAIL)
    assert admin is not None
    members.add_member(server.runtime.meta, pid, admin.id, role="owner")
    page = owner.get(f"/p/{pid}/profiles/erase-me")
    assert page.status == 200 and 'id="ex-erase-start"' in page.text
    confirm = owner.get(f"/p/{pid}/profile/erase?id=erase-me")
    assert confirm.status == 200 and 'id="ex-erase-form"' in confirm.text
    assert 'name="confirm" value="erase"' in confirm.text
    users.create_user(server.runtime.meta, "viewer@example.com", "a long viewer passphrase", name="V")
    viewer_user = users.get_user_by_email(server.runtime.meta, "viewer@example.com")
    assert viewer_user is not None
    members.add_member(server.runtime.meta, pid, viewer_user.id, role="member")
    member = login(server, "viewer@example.com", "a long viewer passphrase")
    assert 'id="ex-erase-start"' not in member.get(f"/p/{pid}/profiles/erase-me").text
    assert member.get(f"/p/{pid}/profile/erase?id=erase-me").status == 403
    assert member.post(f"/p/{pid}/profile/erase", {"id": "erase-me", "confirm": "erase"}).status == 403
    # No CSRF token, or no confirmation: refused, nothing erased.
    confirmed = {"id": "erase-me", "confirm": "erase"}
    assert owner.post(f"/p/{pid}/profile/erase", confirmed, csrf=False).status == 403
    assert owner.post(f"/p/{pid}/profile/erase", {"id": "erase-me"}).status == 400
    assert counts(server, pid, "erase-me")[0] == stored_before

    held.close()  # the writer may write again; the erase takes its lock and the store's guard
    guard.close()
    done = owner.post(f"/p/{pid}/profile/erase", {"id": "erase-me", "confirm": "erase"})
    assert done.status == 200, done.text[:500]
    assert 'id="ex-erase-done"' in done.text

    # Every store: no events, sessions or profile rows; the spool and the writer's memory hold none.
    assert counts(server, pid, "erase-me") == (0, 0, 0)
    assert "erase-me" not in spooled_profiles(data_dir)
    server.flush()  # what was held in memory is written now: still nothing of the profile
    assert counts(server, pid, "erase-me") == (0, 0, 0)
    assert server.runtime.store.fetch(
        "SELECT count(*) FROM events WHERE list_contains(map_values(properties), $m) OR path LIKE $like",
        {"m": f"{MARK_WEB} 0", "like": f"%{MARK_WEB}%"},
    ) == [(0,)]
    # The other profiles are untouched: 4 + 2 events (+ their session_start), 1 profile row.
    keep_events = server.runtime.store.fetch(
        "SELECT count(*) FROM events WHERE profile_id = 'keep-me' AND name <> 'session_start'", {}
    )[0][0]
    assert keep_events == 6
    assert counts(server, pid, "keep-me")[2] >= 1
    assert counts(server, pid, "erase-cli")[0] == 5  # 4 + session_start
    # Reports do not serve a cached copy: the profile's page is gone.
    assert owner.get(f"/p/{pid}/profiles/erase-me").status == 404
    # Raw bytes: the marker is in no file of the data dir (DuckDB file rewritten, spool vacuumed).
    assert marker_hits(data_dir, MARK_WEB) == {}
    assert marker_hits(data_dir, KEEP).get("events.duckdb", 0) > 0

    # The CLI refuses while the server holds the store, and says what to do instead.
    env = {**os.environ, "OPENPANEL_GEOIP__AUTO_DOWNLOAD": "false", "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "openpanel_lite", "profile", "erase", pid, "erase-cli"]
    argv += ["--data-dir", str(data_dir), "--json"]
    busy = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, cwd=REPO)
    assert busy.returncode == 1 and "in use by a running server" in busy.stderr, busy.stderr
    assert counts(server, pid, "erase-cli")[0] == 5  # 4 + session_start

    server.stop()
    assert marker_hits(data_dir, MARK_CLI).get("events.duckdb", 0) > 0
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    result = msgspec.json.decode(out.stdout)
    # identify → 1 profile row; 4 events + session_start; 1 session row.
    assert result["store_rows_deleted"] == 1 + 5 + 1, result
    assert marker_hits(data_dir, MARK_CLI) == {}
    assert marker_hits(data_dir, MARK_WEB) == {}
    import duckdb

    with duckdb.connect(str(data_dir / "events.duckdb"), read_only=True) as db:
        left = db.execute("SELECT profile_id, count(*) FROM events GROUP BY 1 ORDER BY 1").fetchall()
    assert [p for p, _ in left] == ["keep-me"], left
