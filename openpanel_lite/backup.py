"""`openpanel backup DEST` and `openpanel restore SRC`: a consistent copy of a data dir, taken while the
server runs, and its way back.

Order matters (reliability §0 item 2): the spool is copied *before* the event store. The spool only
loses records at or below the watermark of a checkpoint, and the store's watermark never goes down, so
every record missing from the copied store (above its watermark) is still in the copied spool; on the
first start after a restore the writer replays exactly those. The SQLite files (metadata, spool) are
copied with SQLite's online backup API (a snapshot, other processes keep writing); the DuckDB file and
its WAL are copied under the store's file guard (storage/file_guard.py), then opened once so the copy
replays its WAL into one self-contained file.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import apsw
import duckdb
import msgspec

from openpanel_lite import __version__, paths
from openpanel_lite.storage.file_guard import FileGuard, guard_path

MANIFEST = "openpanel-backup.json"
# What a backup holds, besides the manifest; the secret key only when the data dir has one.
SQLITE_FILES = (paths.META_FILE, paths.SPOOL_FILE)
# Files a data dir holds that a restore replaces (with their journals).
_DATA_FILES = (
    paths.META_FILE,
    paths.SPOOL_FILE,
    paths.EVENTS_FILE,
    paths.SECRET_KEY_FILE,
)
_SIDE_SUFFIXES = ("", "-wal", "-shm", "-journal", ".wal", ".guard")
GUARD_TIMEOUT_S = 60.0


class BackupError(Exception):
    """The backup or restore could not be made; the message is one line for the user."""


class Manifest(msgspec.Struct, frozen=True):
    version: str
    created_at: str
    files: dict[str, int]  # name -> bytes
    store_watermark: int  # the copied store's spool watermark; the copied spool replays above it


def _sqlite_copy(source: Path, target: Path) -> None:
    """Online backup: a consistent snapshot while other connections (and processes) keep writing."""
    src = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        src.set_busy_timeout(5000)
        dst = apsw.Connection(str(target))
        try:
            # One step: the whole copy under one read snapshot. Page-by-page steps restart whenever
            # another process commits, which the spool does many times a second.
            with dst.backup("main", src, "main") as step:
                step.step(-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file in the backup
        finally:
            dst.close()
    finally:
        src.close()


def _store_copy(events: Path, target: Path) -> int:
    """Copy the DuckDB file (and WAL) while no process writes it; returns the copy's watermark."""
    guard = FileGuard(events)
    try:
        with guard.exclusive(GUARD_TIMEOUT_S):
            shutil.copyfile(events, target)
            wal = Path(f"{events}.wal")
            if wal.exists():
                shutil.copyfile(wal, f"{target}.wal")
    except TimeoutError:
        raise BackupError(f"the event store stayed busy for {GUARD_TIMEOUT_S:.0f} s") from None
    finally:
        guard.close()
    # Our own copy, so DuckDB may open it: replaying the copied WAL proves the copy is readable.
    con = duckdb.connect(str(target))
    try:
        mark = con.execute("SELECT max(watermark) FROM _spool_watermark").fetchall()[0][0]
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return int(mark or 0)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(data_dir: Path, dest: Path) -> Manifest:
    """Copy the data dir into `dest` (created; must be empty or absent)."""
    events = paths.events_path(data_dir)
    if not paths.meta_path(data_dir).exists() or not events.exists():
        raise BackupError(f"{data_dir} holds no openpanel data (meta.sqlite and events.duckdb)")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)  # the copy holds the same personal data as the data dir
    for name in SQLITE_FILES:
        if (data_dir / name).exists():
            _sqlite_copy(data_dir / name, dest / name)
    mark = _store_copy(events, dest / paths.EVENTS_FILE)
    secret = data_dir / paths.SECRET_KEY_FILE
    if secret.exists():
        shutil.copy2(secret, dest / paths.SECRET_KEY_FILE)
    files = {}
    for f in sorted(dest.iterdir()):
        os.chmod(f, 0o600)
        _fsync(f)
        files[f.name] = f.stat().st_size
    manifest = Manifest(__version__, datetime.now(UTC).isoformat(timespec="seconds"), files, mark)
    (dest / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    _fsync(dest / MANIFEST)
    _fsync(dest)
    return manifest


def _store_in_use(events: Path) -> bool:
    if not events.exists():
        return False
    try:
        duckdb.connect(str(events), read_only=True).close()
    except duckdb.Error as e:
        return "lock" in str(e).lower()
    return False


def restore(src: Path, data_dir: Path, *, force: bool = False) -> Manifest:
    """Put a backup in place as the data dir; refuses a non-empty data dir unless `force`."""
    try:
        manifest = msgspec.json.decode((src / MANIFEST).read_bytes(), type=Manifest)
    except (OSError, msgspec.DecodeError) as e:
        raise BackupError(f"{src} is not an openpanel backup: {e}") from None
    for name, size in manifest.files.items():
        got = (src / name).stat().st_size if (src / name).exists() else -1
        if got != size:
            raise BackupError(f"{src / name}: {got} bytes, the manifest says {size}")
    if data_dir.exists() and any(data_dir.iterdir()):
        if not force:
            raise BackupError(f"{data_dir} is not empty; pass --force to replace its data")
        if _store_in_use(paths.events_path(data_dir)):
            raise BackupError(f"a running server uses {data_dir}; stop it before restoring")
        for name in _DATA_FILES:
            for suffix in _SIDE_SUFFIXES:
                (data_dir / f"{name}{suffix}").unlink(missing_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in manifest.files:
        shutil.copyfile(src / name, data_dir / name)
        os.chmod(data_dir / name, 0o600)
        _fsync(data_dir / name)
    guard_path(paths.events_path(data_dir)).unlink(missing_ok=True)
    _fsync(data_dir)
    return manifest
