"""Shared helpers for ingest tests: a live server with a tiny GeoIP file, a project with a client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from openpanel_lite.config import Config, load
from openpanel_lite.meta import clients, projects
from tests.conftest import free_port
from tests.harness import LiveServer

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/148.0.0.0 Safari/537.36"
)
LONDON_IP = "81.2.69.142"
HANOVER_IP = "2a02:2e0:3fe:1001:302::"


def write_geo(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Test-City", languages=["en"])
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"country_code": "GB", "state1": "England", "city": "London", "latitude": 51.5, "longitude": -0.125},
    )
    writer.insert_network(
        IPSet(["2a02:2e0::/32"]),
        {
            "country_code": "DE",
            "state1": "Lower Saxony",
            "city": "Hanover",
            "latitude": 52.37,
            "longitude": 9.74,
        },
    )
    writer.to_db_file(str(path))
    return path


def live_config(tmp_path: Path, **overrides: object) -> Config:
    """The in-process test server's config; `overrides` are more dotted keys (e.g. a flush interval)."""
    return load(
        None,
        {},
        {
            "data.dir": str(tmp_path / "data"),
            "server.port": free_port(),
            "server.trusted_proxies": ["127.0.0.1/32"],
            "geoip.path": str(write_geo(tmp_path / "geo.mmdb")),
            "geoip.auto_download": False,
            "storage.duckdb.memory_limit": "256MiB",
            "storage.duckdb.threads": 1,
            "ingest.min_free_disk_mb": 0,
            "ingest.min_free_disk_ratio": 0.0,
            # The in-process server's loop shares the GIL with the test's own work (DuckDB reads,
            # Chromium drivers), so its lag says nothing about ingest load: no lag shedding here
            # unless a test asks for it (tests/test_ingest_hardening.py, R08 run real servers).
            "ingest.shed_loop_lag_ms": 0,
            # ingest__flush_interval_ms=… -> "ingest.flush_interval_ms"; given keys win.
            **{key.replace("__", "."): value for key, value in overrides.items()},
        },
    )


class Site:
    def __init__(self, server: LiveServer, *, unsafe_revenue: bool = False) -> None:
        meta = server.runtime.meta
        self.project = projects.create_project(
            meta, "Acme", domain="example.com", cors=["example.com", "*.example.com"]
        )
        if unsafe_revenue:
            projects.update_project(meta, self.project.id, allow_unsafe_revenue_tracking=True)
        client, secret = clients.create_client(meta, self.project.id)
        self.client_id = client.id
        self.secret = secret
        self.server = server

    def headers(self, **extra: str) -> dict[str, str]:
        h = {
            "openpanel-client-id": self.client_id,
            "openpanel-sdk-name": "web",
            "openpanel-sdk-version": "1.4.1",
            "User-Agent": CHROME_WIN,
            "Origin": "https://example.com",
            "X-Forwarded-For": LONDON_IP,
            "Accept-Language": "en",
            "Sec-Fetch-Mode": "cors",
            "sec-ch-ua": '"Chromium";v="148"',
        }
        h.update(extra)
        return {k: v for k, v in h.items() if v != ""}

    def track(self, payload: dict[str, Any], **headers: str) -> Any:
        return self.server.request("POST", "/track", payload, self.headers(**headers))


def screen_view(
    path: str = "https://example.com/pricing?utm_source=newsletter&utm_medium=email#plans",
) -> dict[str, Any]:
    return {
        "type": "track",
        "payload": {
            "name": "screen_view",
            "properties": {
                "__referrer": "https://www.google.com/",
                "__path": path,
                "__title": "Pricing – Acme",
            },
        },
    }


EVENT_COLUMNS = (
    "name, path, origin, referrer, referrer_name, referrer_type, properties, country, city, region, "
    "browser, os, device, sdk_name, sdk_version, device_id, session_id, profile_id"
)


def events(server: LiveServer, where: str = "true") -> list[dict[str, Any]]:
    cols = [c.strip() for c in EVENT_COLUMNS.split(",")]
    rows = server.rows(f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY created_at, name")
    return [dict(zip(cols, r, strict=True)) for r in rows]
