"""Client IP resolution: spoofing from untrusted peers is ignored (reliability.md §5 "IP spoofing")."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openpanel_lite.ingest.client_ip import TrustedProxies, parse_ip, resolve_client_ip

NOBODY = TrustedProxies()
LOCAL_PROXY = TrustedProxies.from_cidrs(["127.0.0.1/32", "::1"])
PROXY_NETS = TrustedProxies.from_cidrs(["10.0.0.0/8", "172.16.0.0/12", "2001:db8:100::/48"])

SPOOF_HEADERS = {
    "x-forwarded-for": "9.9.9.9",
    "x-real-ip": "9.9.9.9",
    "cf-connecting-ip": "9.9.9.9",
    "true-client-ip": "9.9.9.9",
    "openpanel-client-ip": "9.9.9.9",
    "x-client-ip": "9.9.9.9",
    "forwarded": "for=9.9.9.9",
}


def resolve(
    peer: str | None,
    headers: dict[str, str],
    trusted: TrustedProxies = NOBODY,
    *,
    secret: bool = False,
    override: object = None,
) -> str:
    return resolve_client_ip(peer, headers, trusted, secret_authenticated=secret, override=override)


# --- untrusted peers: every header is ignored -------------------------------------------------


def test_no_headers_uses_socket_peer() -> None:
    assert resolve("81.2.69.142", {}) == "81.2.69.142"


@pytest.mark.parametrize("name", sorted(SPOOF_HEADERS))
def test_each_spoofed_header_from_untrusted_peer_is_ignored(name: str) -> None:
    assert resolve("81.2.69.142", {name: SPOOF_HEADERS[name]}) == "81.2.69.142"


def test_all_spoofed_headers_at_once_are_ignored() -> None:
    assert resolve("81.2.69.142", SPOOF_HEADERS) == "81.2.69.142"


def test_peer_outside_trusted_cidrs_is_not_trusted() -> None:
    assert resolve("11.0.0.1", SPOOF_HEADERS, PROXY_NETS) == "11.0.0.1"
    assert resolve("2001:db8:101::1", SPOOF_HEADERS, PROXY_NETS) == "2001:db8:101::1"


def test_override_without_secret_is_ignored() -> None:
    assert resolve("81.2.69.142", SPOOF_HEADERS, override="9.9.9.9") == "81.2.69.142"


def test_missing_or_garbage_peer_gives_empty() -> None:
    assert resolve(None, {}) == ""
    assert resolve("", {}) == ""
    assert resolve("not-an-ip", {"x-forwarded-for": "9.9.9.9"}, LOCAL_PROXY) == ""


# --- trusted proxies ---------------------------------------------------------------------------


def test_trusted_proxy_x_forwarded_for() -> None:
    assert resolve("127.0.0.1", {"x-forwarded-for": "81.2.69.142"}, LOCAL_PROXY) == "81.2.69.142"


def test_spoofed_leftmost_entry_is_skipped() -> None:
    # The client sent "9.9.9.9"; nginx appended the real address it saw.
    headers = {"x-forwarded-for": "9.9.9.9, 81.2.69.142"}
    assert resolve("127.0.0.1", headers, LOCAL_PROXY) == "81.2.69.142"


def test_multiple_trusted_proxies_are_walked_right_to_left() -> None:
    headers = {"x-forwarded-for": "9.9.9.9, 81.2.69.142, 10.1.2.3, 172.16.5.5"}
    assert resolve("10.0.0.2", headers, PROXY_NETS) == "81.2.69.142"


def test_chain_of_only_trusted_hops_yields_leftmost() -> None:
    headers = {"x-forwarded-for": "10.9.9.9, 10.1.2.3"}
    assert resolve("10.0.0.2", headers, PROXY_NETS) == "10.9.9.9"


def test_empty_entries_are_skipped() -> None:
    assert resolve("127.0.0.1", {"x-forwarded-for": " , 81.2.69.142 ,"}, LOCAL_PROXY) == "81.2.69.142"


def test_garbage_hop_falls_back_to_x_real_ip_then_peer() -> None:
    headers = {"x-forwarded-for": "81.2.69.142, unknown"}
    assert resolve("127.0.0.1", headers, LOCAL_PROXY) == "127.0.0.1"
    headers["x-real-ip"] = "8.8.8.8"
    assert resolve("127.0.0.1", headers, LOCAL_PROXY) == "8.8.8.8"


def test_trusted_proxy_x_real_ip() -> None:
    assert resolve("127.0.0.1", {"x-real-ip": " 81.2.69.142 "}, LOCAL_PROXY) == "81.2.69.142"


def test_trusted_proxy_without_headers_is_the_client() -> None:
    assert resolve("127.0.0.1", {}, LOCAL_PROXY) == "127.0.0.1"
    assert resolve("127.0.0.1", {"x-real-ip": "garbage"}, LOCAL_PROXY) == "127.0.0.1"


def test_x_forwarded_for_wins_over_x_real_ip() -> None:
    headers = {"x-forwarded-for": "81.2.69.142", "x-real-ip": "8.8.8.8"}
    assert resolve("127.0.0.1", headers, LOCAL_PROXY) == "81.2.69.142"


def test_cdn_headers_are_not_read_even_from_trusted_proxy() -> None:
    # A proxy that passes CF-Connecting-IP through unchanged lets any client set it; XFF is appended to.
    headers = {"cf-connecting-ip": "9.9.9.9", "true-client-ip": "9.9.9.9"}
    assert resolve("127.0.0.1", headers, LOCAL_PROXY) == "127.0.0.1"


def test_rfc7239_forwarded() -> None:
    headers = {"forwarded": 'for=9.9.9.9;proto=https, for="[2a02:2e0:3fe:1001:302::]:4711";by=10.0.0.2'}
    assert resolve("10.0.0.2", headers, PROXY_NETS) == "2a02:2e0:3fe:1001:302::"
    headers = {"forwarded": "for=81.2.69.142, for=10.3.3.3;proto=http"}
    assert resolve("10.0.0.2", headers, PROXY_NETS) == "81.2.69.142"
    assert resolve("10.0.0.2", {"forwarded": "for=unknown"}, PROXY_NETS) == "10.0.0.2"
    assert resolve("10.0.0.2", {"forwarded": "proto=https"}, PROXY_NETS) == "10.0.0.2"


# --- IPv6 and normalisation --------------------------------------------------------------------


def test_ipv6_peer_and_chain() -> None:
    assert resolve("2A02:2E0:3FE:1001:302:0:0:0", {}) == "2a02:2e0:3fe:1001:302::"
    headers = {"x-forwarded-for": "2a02:2e0:3fe:1001:302::, 2001:db8:100::7"}
    assert resolve("2001:db8:100::1", headers, PROXY_NETS) == "2a02:2e0:3fe:1001:302::"
    assert resolve("::1", {"x-forwarded-for": "[2a02:2e0:3fe::1]:443"}, LOCAL_PROXY) == "2a02:2e0:3fe::1"


def test_ipv4_mapped_addresses_are_unwrapped() -> None:
    assert resolve("::ffff:81.2.69.142", {}) == "81.2.69.142"
    # A mapped peer matches an IPv4 trusted CIDR.
    assert resolve("::ffff:127.0.0.1", {"x-forwarded-for": "::ffff:8.8.8.8"}, LOCAL_PROXY) == "8.8.8.8"


def test_ipv4_with_port_in_chain() -> None:
    assert resolve("127.0.0.1", {"x-forwarded-for": "81.2.69.142:51234"}, LOCAL_PROXY) == "81.2.69.142"


# --- secret-authenticated server SDKs ------------------------------------------------------------


def test_secret_override_property_wins() -> None:
    headers = {"openpanel-client-ip": "8.8.8.8", "x-forwarded-for": "1.1.1.1"}
    assert resolve("127.0.0.1", headers, LOCAL_PROXY, secret=True, override="81.2.69.142") == "81.2.69.142"


def test_secret_header_order() -> None:
    headers = {"openpanel-client-ip": "8.8.8.8", "x-client-ip": "1.1.1.1"}
    assert resolve("203.0.113.9", headers, secret=True) == "8.8.8.8"
    assert resolve("203.0.113.9", {"x-client-ip": "1.1.1.1"}, secret=True) == "1.1.1.1"


@pytest.mark.parametrize("override", ["garbage", "", 42, None, ["8.8.8.8"]])
def test_secret_invalid_override_falls_through(override: object) -> None:
    headers = {"openpanel-client-ip": "nonsense", "x-client-ip": "1.1.1.1"}
    assert resolve("203.0.113.9", headers, secret=True, override=override) == "1.1.1.1"
    assert resolve("203.0.113.9", {}, secret=True, override=override) == "203.0.113.9"


def test_secret_does_not_unlock_proxy_headers_from_untrusted_peer() -> None:
    assert resolve("203.0.113.9", {"x-forwarded-for": "9.9.9.9"}, secret=True) == "203.0.113.9"


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("81.2.69.142", IPv4Address("81.2.69.142")),
        ('  "81.2.69.142"  ', IPv4Address("81.2.69.142")),
        ("81.2.69.142:80", IPv4Address("81.2.69.142")),
        ("[2001:db8::1]", IPv6Address("2001:db8::1")),
        ("[2001:db8::1]:8080", IPv6Address("2001:db8::1")),
        ("::ffff:10.0.0.1", IPv4Address("10.0.0.1")),
        ("81.2.69.142:", None),
        ("81.2.69.142:http", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("999.1.1.1", None),
        ("1.2.3", None),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        (None, None),
        ("1" * 200, None),
    ],
)
def test_parse_ip(text: str | None, expected: IPv4Address | IPv6Address | None) -> None:
    assert parse_ip(text) == expected


@given(st.text(max_size=60))
def test_resolve_never_raises_and_returns_peer_or_valid_ip(junk: str) -> None:
    headers = {"x-forwarded-for": junk, "x-real-ip": junk, "forwarded": junk, "openpanel-client-ip": junk}
    got = resolve("127.0.0.1", headers, LOCAL_PROXY, secret=True, override=junk)
    assert got == "127.0.0.1" or parse_ip(got) is not None
    assert resolve("81.2.69.142", headers) == "81.2.69.142"


def test_trusted_proxies_from_cidrs() -> None:
    proxies = TrustedProxies.from_cidrs([" 10.0.0.0/8 ", "192.168.1.7", "fd00::/8", "10.1.2.3/8"])
    assert [str(n) for n in proxies.networks] == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "10.0.0.0/8"]
    assert IPv4Address("10.200.0.1") in proxies
    assert IPv4Address("192.168.1.8") not in proxies
    assert IPv6Address("fd12::1") in proxies
    assert "10.0.0.1" not in proxies  # only parsed addresses are members
    with pytest.raises(ValueError, match="not an IP network: 'example.com'"):
        TrustedProxies.from_cidrs(["10.0.0.0/8", "example.com"])
