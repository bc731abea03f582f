"""S10 xff-spoof: with no trusted proxies, forged forwarding headers and IP overrides are ignored: the
attributed address is the socket peer (127.0.0.1). An override is honoured only for a caller that
proves the client secret, and proxy headers only from a configured trusted proxy.

"Attributed address" is observed through what it drives, since raw IPs are never stored: the GeoIP
country (the test database maps 81.2.69.0/24 to GB; 127.0.0.1 has none) and the device id (a hash of
UA, IP, origin and the daily salt: the same id as a request without the forged header means the same IP).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from tests.harness import LiveServer
from tests.ingest_support import LONDON_IP, Site, live_config

FORGED = {
    "X-Forwarded-For": LONDON_IP,
    "X-Real-IP": LONDON_IP,
    "CF-Connecting-IP": LONDON_IP,
    "True-Client-IP": LONDON_IP,
    "X-Client-IP": LONDON_IP,
    "Fastly-Client-IP": LONDON_IP,
    "X-Cluster-Client-IP": LONDON_IP,
    "Forwarded": f"for={LONDON_IP}",
    "openpanel-client-ip": LONDON_IP,
}


def _untrusted_server(tmp_path: Path) -> LiveServer:
    cfg = live_config(tmp_path)
    return LiveServer(
        msgspec.structs.replace(cfg, server=msgspec.structs.replace(cfg.server, trusted_proxies=()))
    )


def _send(
    site: Site, marker: str, extra: dict[str, str], props: dict[str, Any] | None = None
) -> dict[str, Any]:
    headers = {k: v for k, v in site.headers().items() if k != "X-Forwarded-For"}
    headers.update(extra)
    body = {"type": "track", "payload": {"name": marker, "properties": props or {}}}
    reply = site.server.request("POST", "/track", body, headers)
    assert reply.status == 200, (marker, reply.status, reply.text)
    [(country, device_id)] = site.server.rows(
        "SELECT country, device_id FROM events WHERE name = $n", {"n": marker}
    )
    return {"country": country, "device_id": device_id}


def test_forged_headers_are_ignored_without_trusted_proxies(tmp_path: Path) -> None:
    server = _untrusted_server(tmp_path)
    try:
        site = Site(server)
        baseline = _send(site, "baseline", {})
        assert baseline["country"] in ("", None)
        attributed = []
        for name, value in FORGED.items():
            attributed.append(_send(site, f"forged {name}", {name: value}))
        attributed.append(_send(site, "forged all", FORGED))
        attributed.append(_send(site, "forged __ip", {}, {"__ip": LONDON_IP}))
        attributed.append(_send(site, "forged all + __ip", FORGED, {"__ip": LONDON_IP}))
        # A wrong secret is no secret.
        wrong = {**FORGED, "openpanel-client-secret": "sec_00000000000000000000"}
        attributed.append(_send(site, "wrong secret", wrong, {"__ip": LONDON_IP}))
        assert attributed == [baseline] * len(attributed)  # 100% attributed to the socket peer
        print(f"\nS10: {len(attributed)} forged requests, all attributed to the socket peer")

        # The client secret (a server SDK forwarding its visitor's address) unlocks the override.
        secret = {"openpanel-client-secret": site.secret, "Origin": ""}
        by_header = _send(site, "secret header", {**secret, "openpanel-client-ip": LONDON_IP})
        by_property = _send(site, "secret property", secret, {"__ip": LONDON_IP})
        assert by_header["country"] == by_property["country"] == "GB"
        # ... but not the proxy headers: those need a trusted proxy, secret or not.
        proxy_only = _send(site, "secret xff", {**secret, "X-Forwarded-For": LONDON_IP})
        assert proxy_only["country"] in ("", None)
    finally:
        server.stop()


def test_proxy_headers_count_only_from_a_trusted_proxy(server: LiveServer, site: Site) -> None:
    """The shared fixture trusts 127.0.0.1/32: its X-Forwarded-For is honoured, the spoofed left part
    of a chain is not."""
    via_proxy = _send(site, "via proxy", {"X-Forwarded-For": LONDON_IP})
    assert via_proxy["country"] == "GB"
    chain = _send(site, "spoofed chain", {"X-Forwarded-For": f"{LONDON_IP}, 198.51.100.7"})
    assert chain["country"] in ("", None)  # the client is the right-most untrusted hop
    cdn = _send(site, "cdn header", {"X-Forwarded-For": "198.51.100.7", "CF-Connecting-IP": LONDON_IP})
    assert cdn["country"] in ("", None)
