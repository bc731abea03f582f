"""Metadata store: MetaDB migrations and pragmas, secrets at rest, salts, login sessions and throttling."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from openpanel_lite.meta import MetaDB, MetaError
from openpanel_lite.meta.clients import (
    create_client,
)
from openpanel_lite.meta.clock import from_ms, to_ms
from openpanel_lite.meta.db import package_migrations
from openpanel_lite.meta.login_sessions import (
    create_login_session,
    delete_login_session,
    delete_sessions_for_user,
    get_login_session,
    purge_expired_sessions,
)
from openpanel_lite.meta.login_throttle import clear_attempts, register_attempt
from openpanel_lite.meta.projects import (
    create_project,
)
from openpanel_lite.meta.salts import ensure_salts, get_salts, rotate_salts
from openpanel_lite.meta.secrets import (
    hash_password,
    hash_secret,
    needs_rehash,
    new_client_secret,
    verify_password,
    verify_secret,
)
from openpanel_lite.meta.users import (
    create_user,
)

NOW = datetime(2026, 6, 8, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
ALL_TABLES = {
    "users", "projects", "project_members", "clients", "login_sessions", "login_attempts", "salts",
    "webhooks", "webhook_deliveries", "dashboards", "reports",
}  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Iterator[MetaDB]:
    meta = MetaDB(tmp_path / "meta.sqlite")
    meta.migrate()
    yield meta
    meta.close()


def _migrations_dir(tmp_path: Path, *extra: tuple[str, str]) -> Path:
    """A copy of the packaged migrations plus test-only ``(file name, sql)`` files."""
    folder = tmp_path / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    for entry in package_migrations().iterdir():
        if entry.name.endswith(".sql"):
            (folder / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
    for name, sql in extra:
        (folder / name).write_text(sql, encoding="utf-8")
    return folder


def _tables(db: MetaDB) -> set[str]:
    return {r[0] for r in db.query("SELECT name FROM sqlite_schema WHERE type = 'table'")}


# ------------------------------------------------------------------------------------------------
# MetaDB: migrations, pragmas, transactions


def test_migrate_from_empty_then_rerun_is_a_noop(tmp_path: Path) -> None:
    meta = MetaDB(tmp_path / "meta.sqlite")
    assert meta.user_version() == 0
    assert meta.migrate() == [1]
    assert meta.user_version() == 1
    assert _tables(meta) == ALL_TABLES
    assert meta.migrate() == []
    meta.close()
    again = MetaDB(tmp_path / "meta.sqlite")
    assert again.migrate() == []
    again.close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".bak-" in p.name) == []


def test_pragmas_wal_foreign_keys_synchronous_busy_timeout(tmp_path: Path) -> None:
    meta = MetaDB(tmp_path / "meta.sqlite", busy_timeout_ms=1234)
    assert meta.journal_mode() == "wal"
    assert meta.query("PRAGMA foreign_keys") == [(1,)]
    assert meta.query("PRAGMA synchronous") == [(1,)]  # 1 = NORMAL
    assert meta.query("PRAGMA busy_timeout") == [(1234,)]
    meta.migrate()
    with pytest.raises(Exception, match="FOREIGN KEY"):
        meta.execute(
            "INSERT INTO clients (id, name, type, project_id, secret_hash, created_at) "
            "VALUES ('c', 'n', 'write', 'no-such-project', 'x', 0)"
        )
    assert (tmp_path / "meta.sqlite").stat().st_mode & 0o777 == 0o600
    meta.close()


def test_backup_made_before_migrating_a_non_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    v1 = MetaDB(path, migrations_dir=_migrations_dir(tmp_path / "v1"))
    assert v1.migrate() == [1]
    create_user(v1, "ada@example.com", PASSWORD, now=NOW)
    v1.close()

    v2_dir = _migrations_dir(
        tmp_path / "v2", ("002_user_notes.sql", "ALTER TABLE users ADD COLUMN note TEXT;")
    )
    v2 = MetaDB(path, migrations_dir=v2_dir)
    assert v2.migrate() == [2]
    assert v2.user_version() == 2
    assert v2.query("SELECT email, note FROM users") == [("ada@example.com", None)]
    backups = [p for p in tmp_path.iterdir() if ".bak-" in p.name]
    assert len(backups) == 1
    assert re.fullmatch(r"meta\.sqlite\.bak-v1-\d{8}T\d{6}Z", backups[0].name)
    assert backups[0].stat().st_mode & 0o777 == 0o600
    copy = sqlite3.connect(backups[0])
    assert copy.execute("PRAGMA user_version").fetchone() == (1,)
    assert copy.execute("SELECT email FROM users").fetchall() == [("ada@example.com",)]
    assert "note" not in [c[1] for c in copy.execute("PRAGMA table_info(users)")]
    copy.close()
    assert v2.migrate() == []
    assert len([p for p in tmp_path.iterdir() if ".bak-" in p.name]) == 1
    v2.close()


def test_failed_migration_rolls_back_and_keeps_the_version(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    MetaDB(path).migrate()
    bad = ("002_broken.sql", "CREATE TABLE half_done (x INTEGER) STRICT; INSERT INTO nowhere VALUES (1);")
    meta = MetaDB(path, migrations_dir=_migrations_dir(tmp_path, bad))
    with pytest.raises(MetaError, match=r"migration 002_broken\.sql failed: .*no such table: nowhere"):
        meta.migrate()
    assert meta.user_version() == 1
    assert "half_done" not in _tables(meta)
    meta.close()


def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    MetaDB(path).migrate()
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(MetaError, match="schema version 1, newer than this openpanel-lite knows \\(0\\)"):
        MetaDB(path, migrations_dir=empty).migrate()


def test_migration_numbers_must_not_have_gaps(tmp_path: Path) -> None:
    folder = _migrations_dir(tmp_path, ("003_skip.sql", "SELECT 1;"))
    with pytest.raises(MetaError, match="without gaps; found 003_skip.sql"):
        MetaDB(":memory:", migrations_dir=folder).migrate()


def test_check_requires_a_migrated_open_database(tmp_path: Path) -> None:
    meta = MetaDB(tmp_path / "meta.sqlite")
    with pytest.raises(MetaError, match="schema version 0, expected 1; run `openpanel migrate`"):
        meta.check()
    meta.migrate()
    meta.check()
    meta.close()
    with pytest.raises(MetaError, match="is unusable"):
        meta.check()


def test_unopenable_paths_raise_meta_error(tmp_path: Path) -> None:
    garbage = tmp_path / "meta.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MetaError, match=f"^cannot open the metadata database {re.escape(str(garbage))}: "):
        MetaDB(garbage)
    missing_dir = tmp_path / "nope" / "meta.sqlite"
    with pytest.raises(MetaError, match="cannot create the metadata database .*No such file or directory"):
        MetaDB(missing_dir)


def test_memory_database_migrates_and_skips_backups() -> None:
    meta = MetaDB(":memory:")
    assert meta.migrate() == [1]
    assert meta.backup() is None
    meta.check()


def test_transaction_rolls_back_and_nests_as_savepoints(db: MetaDB) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO salts (salt, created_at) VALUES ('a', 1)")
        raise RuntimeError("boom")
    with db.transaction():
        db.execute("INSERT INTO salts (salt, created_at) VALUES ('outer', 1)")
        with pytest.raises(RuntimeError), db.transaction():
            db.execute("INSERT INTO salts (salt, created_at) VALUES ('inner', 1)")
            raise RuntimeError("inner only")
    assert db.query("SELECT salt FROM salts") == [("outer",)]


def test_transactions_from_many_threads_do_not_interleave(db: MetaDB) -> None:
    db.execute("CREATE TABLE counter (n INTEGER NOT NULL) STRICT")
    db.execute("INSERT INTO counter VALUES (0)")

    def bump() -> None:
        for _ in range(50):
            with db.transaction():
                row = db.query_one("SELECT n FROM counter")
                assert row is not None
                db.execute("UPDATE counter SET n = :n", {"n": row[0] + 1})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.query("SELECT n FROM counter") == [(200,)]


def test_clock_round_trips_milliseconds() -> None:
    moment = datetime(2026, 6, 8, 12, 0, 0, 123000, tzinfo=UTC)
    assert to_ms(moment) == 1780920000123
    assert from_ms(1780920000123) == moment
    with pytest.raises(ValueError, match="timezone-aware"):
        to_ms(datetime(2026, 6, 8))


# ------------------------------------------------------------------------------------------------
# secrets and passwords

SCRYPT_VECTOR = (
    "00112233445566778899aabbccddeeff.a1b61a14d7c3d8c933d607a316faf4eecd741472db2d77eb18ffde6b69c23fac"
)


def test_client_secret_hash_matches_the_openpanel_vector() -> None:
    secret = "sec_0123456789abcdef0123"
    assert hash_secret(secret, salt="00112233445566778899aabbccddeeff") == SCRYPT_VECTOR
    assert verify_secret(secret, SCRYPT_VECTOR) is True
    assert verify_secret("sec_0123456789abcdef0124", SCRYPT_VECTOR) is False
    assert verify_secret(secret, SCRYPT_VECTOR.replace(".", "")) is False
    assert verify_secret(secret, "short.abc") is False


def test_new_secrets_are_sec_plus_20_hex_and_hash_with_a_fresh_salt() -> None:
    first, second = new_client_secret(), new_client_secret()
    assert re.fullmatch(r"sec_[0-9a-f]{20}", first)
    assert first != second
    stored = hash_secret(first)
    assert re.fullmatch(r"[0-9a-f]{32}\.[0-9a-f]{64}", stored)
    assert stored != hash_secret(first)  # new salt each time
    assert verify_secret(first, stored) is True
    assert verify_secret(second, stored) is False


def test_passwords_use_argon2id_owasp_parameters_and_length_limits() -> None:
    stored = hash_password("12345678")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password("12345678", stored) is True
    assert verify_password("12345679", stored) is False
    assert verify_password("12345678", "not a hash") is False
    assert needs_rehash(stored) is False
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID).hash("12345678")
    assert needs_rehash(weak) is True
    assert verify_password("x" * 256, stored) is False
    for bad in ("1234567", "x" * 256):
        with pytest.raises(MetaError, match="password must be 8 to 255 characters long"):
            hash_password(bad)
    assert verify_password("x" * 255, hash_password("x" * 255)) is True


def test_plaintext_secrets_never_reach_the_database_files(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    meta = MetaDB(path)
    meta.migrate()
    password = "Plaintext-Password-4711"
    user = create_user(meta, "marker-user@example.com", password, now=NOW)
    create_project(meta, "Shop", domain=None, now=NOW)
    _, secret = create_client(meta, "shop", now=NOW)
    _, token = create_login_session(meta, user.id, ttl=timedelta(hours=1), now=NOW)
    needles = [password.encode(), secret.encode(), secret[4:].encode(), token.encode()]

    def file_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("meta.sqlite"))

    while_open = file_bytes()
    assert (path.parent / "meta.sqlite-wal").exists()
    assert b"marker-user@example.com" in while_open  # the scan does see the data it looks for
    meta.close()  # closing checkpoints the WAL into the main file
    after_close = path.read_bytes()
    assert b"marker-user@example.com" in after_close
    for needle in needles:
        assert needle not in while_open
        assert needle not in after_close


# ------------------------------------------------------------------------------------------------
# salts


def _salt_rows(db: MetaDB) -> list[tuple[str, datetime]]:
    return [(r[0], from_ms(r[1])) for r in db.query("SELECT salt, created_at FROM salts ORDER BY created_at")]


def test_first_boot_creates_two_salts_one_backdated_a_day(db: MetaDB) -> None:
    with pytest.raises(MetaError, match="no salts yet"):
        get_salts(db)
    salts = ensure_salts(db, NOW)
    rows = _salt_rows(db)
    assert [created for _, created in rows] == [NOW - timedelta(hours=24), NOW]
    assert (salts.previous, salts.current) == (rows[0][0], rows[1][0])
    assert all(re.fullmatch(r"[0-9a-f]{32}", s) for s, _ in rows)
    assert ensure_salts(db, NOW + timedelta(hours=1)) == salts
    assert get_salts(db) == salts
    assert len(_salt_rows(db)) == 2


def test_rotation_at_midnight_keeps_previous_and_is_idempotent(db: MetaDB) -> None:
    boot = ensure_salts(db, NOW)
    assert rotate_salts(db, NOW + timedelta(hours=6)) == boot  # same UTC day: nothing to do
    midnight = datetime(2026, 6, 9, tzinfo=UTC)
    rotated = rotate_salts(db, midnight)
    assert rotated.previous == boot.current
    assert rotated.current not in (boot.current, boot.previous)
    assert rotate_salts(db, midnight + timedelta(minutes=5)) == rotated
    assert [created for _, created in _salt_rows(db)] == [NOW, midnight]


def test_salts_older_than_48_hours_are_deleted(db: MetaDB) -> None:
    boot = ensure_salts(db, NOW)
    later = NOW + timedelta(hours=49)
    after_gap = rotate_salts(db, later)
    rows = _salt_rows(db)
    assert [created for _, created in rows] == [later]
    assert after_gap.current == after_gap.previous == rows[0][0]
    assert boot.current not in (after_gap.current, after_gap.previous)
    # Day after day only two salts remain, none older than 48 h.
    for day in range(1, 5):
        rotate_salts(db, datetime(2026, 6, 10 + day, tzinfo=UTC))
        created = [c for _, c in _salt_rows(db)]
        assert len(created) == 2
        assert min(created) >= datetime(2026, 6, 10 + day, tzinfo=UTC) - timedelta(hours=48)


# ------------------------------------------------------------------------------------------------
# login sessions and throttling


def test_login_session_stores_only_the_token_hash_and_expires(db: MetaDB) -> None:
    user = create_user(db, "ada@example.com", PASSWORD, now=NOW)
    session, token = create_login_session(db, user.id, ttl=timedelta(hours=1), now=NOW)
    assert session.id == hashlib.sha256(token.encode()).hexdigest()
    assert (session.user_id, session.created_at, session.expires_at) == (
        user.id,
        NOW,
        NOW + timedelta(hours=1),
    )
    assert re.fullmatch(r"[0-9a-f]{32}", session.csrf_seed)
    assert db.query("SELECT id FROM login_sessions") == [(session.id,)]
    assert get_login_session(db, token, now=NOW + timedelta(minutes=59)) == session
    assert get_login_session(db, token, now=NOW + timedelta(hours=1)) is None
    assert get_login_session(db, session.id, now=NOW) is None  # the stored hash is not a valid cookie
    assert purge_expired_sessions(db, NOW + timedelta(hours=1)) == 1
    with pytest.raises(MetaError, match="^no user with id 'ghost'$"):
        create_login_session(db, "ghost", ttl=timedelta(hours=1))


def test_logout_one_session_or_all_of_a_user(db: MetaDB) -> None:
    ada = create_user(db, "ada@example.com", PASSWORD, now=NOW)
    bob = create_user(db, "bob@example.com", PASSWORD, now=NOW)
    _, first = create_login_session(db, ada.id, ttl=timedelta(days=30), now=NOW)
    _, second = create_login_session(db, ada.id, ttl=timedelta(days=30), now=NOW)
    bob_session, bob_token = create_login_session(db, bob.id, ttl=timedelta(days=30), now=NOW)
    assert first != second
    assert delete_login_session(db, first) is True
    assert delete_login_session(db, first) is False
    assert get_login_session(db, first, now=NOW) is None
    assert delete_sessions_for_user(db, ada.id) == 1
    assert get_login_session(db, second, now=NOW) is None
    assert get_login_session(db, bob_token, now=NOW) == bob_session


def test_login_throttle_counts_in_a_fixed_window(db: MetaDB) -> None:
    results = [register_attempt(db, "email:ada@example.com", now=NOW) for _ in range(11)]
    assert [r.attempts for r in results] == list(range(1, 12))
    assert [r.allowed for r in results] == [True] * 10 + [False]
    assert results[-1].retry_after_s == 15 * 60
    late = register_attempt(db, "email:ada@example.com", now=NOW + timedelta(minutes=14, seconds=30))
    assert (late.allowed, late.retry_after_s) == (False, 30)
    fresh = register_attempt(db, "email:ada@example.com", now=NOW + timedelta(minutes=15))
    assert (fresh.allowed, fresh.attempts) == (True, 1)
    assert register_attempt(db, "email:bob@example.com", now=NOW).attempts == 1
    clear_attempts(db, "email:ada@example.com")
    assert register_attempt(db, "email:ada@example.com", now=NOW).attempts == 1
    assert db.query_one("SELECT count(*) FROM login_attempts WHERE key_hash LIKE '%ada%'") == (0,)


def test_login_throttle_allows_exactly_ten_of_fifty_parallel_attempts(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    MetaDB(path).migrate()
    connections = [MetaDB(path) for _ in range(5)]
    allowed: list[bool] = []
    guard = threading.Lock()

    def attack(meta: MetaDB) -> None:
        for _ in range(10):
            result = register_attempt(meta, "email:ada@example.com", now=NOW)
            with guard:
                allowed.append(result.allowed)

    threads = [threading.Thread(target=attack, args=(c,)) for c in connections]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in connections:
        c.close()
    assert len(allowed) == 50
    assert allowed.count(True) == 10
