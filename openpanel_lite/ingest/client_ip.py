"""The client IP of an ingest request: the socket peer unless a configured trusted proxy vouches otherwise.

Unlike upstream OpenPanel (which believes client-settable headers from anyone), forwarding headers are
read only from trusted-proxy peers, and explicit overrides only from secret-authenticated server SDKs.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import msgspec

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Longest sensible textual address: full IPv6 with an embedded IPv4, brackets, a zone id and a port.
_MAX_ADDRESS_TEXT = 100
# Server SDKs forward their end user's address in these (openpanel-facts §1.4).
_SERVER_SDK_HEADERS = ("openpanel-client-ip", "x-client-ip")


class TrustedProxies(msgspec.Struct, frozen=True, cache_hash=True):
    """Networks of reverse proxies whose forwarding headers are believed (``server.trusted_proxies``).

    Hashed once (cache_hash): it is part of every cached client-address lookup's key.
    """

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> TrustedProxies:
        """Parse CIDRs (a bare address means a single host); raises ValueError naming a bad entry."""
        networks: list[IPNetwork] = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an IP network: {cidr!r}") from None
        return cls(tuple(networks))

    def __contains__(self, addr: object) -> bool:
        if not isinstance(addr, IPv4Address | IPv6Address):
            return False
        return any(addr.version == net.version and addr in net for net in self.networks)


# Header values repeat (the same visitors and proxies); ipaddress parsing costs ~30 µs per call.
@functools.lru_cache(maxsize=65536)
def parse_ip(text: str | None) -> IPAddress | None:
    """An address from a header value or socket peer, or None when it is not one.

    Accepts surrounding whitespace and quotes, ``[v6]`` and ``[v6]:port``, ``v4:port``; unwraps
    IPv4-mapped IPv6 (``::ffff:1.2.3.4``) so one client has one textual form.
    """
    if not text:
        return None
    value = text.strip().strip('"').strip()
    if not value or len(value) > _MAX_ADDRESS_TEXT:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or not _is_port_suffix(value[end + 1 :]):
            return None
        value = value[1:end]
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
        if not port.isdigit():
            return None
        value = host
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def resolve_client_ip(
    peer: str | None,
    headers: Mapping[str, str],
    trusted: TrustedProxies,
    *,
    secret_authenticated: bool,
    override: object = None,
) -> str:
    """The client address as normalised text, or "" when even the socket peer is unknown.

    Order: for secret-authenticated (server SDK) requests, ``properties.__ip`` (``override``), then
    the ``openpanel-client-ip`` / ``x-client-ip`` headers. Otherwise the socket peer, unless the peer
    is a trusted proxy: then X-Forwarded-For walked right to left past trusted hops (else RFC 7239
    Forwarded the same way), else X-Real-IP. Invalid values are skipped, never raised.

    ``headers`` is looked up with lower-case names (as ASGI delivers them); repeated header lines
    must be joined with ", " by the caller, since the rightmost entry is the one a proxy appended.
    """
    if secret_authenticated:
        given = override if isinstance(override, str) else None
        for candidate in (given, *(headers.get(name) for name in _SERVER_SDK_HEADERS)):
            explicit = parse_ip(candidate)
            if explicit is not None:
                return str(explicit)
    return _from_network(
        peer, headers.get("x-forwarded-for"), headers.get("forwarded"), headers.get("x-real-ip"), trusted
    )


# The same visitors and proxies repeat: cache the whole peer + forwarding-headers → address decision.
@functools.lru_cache(maxsize=65536)
def _from_network(
    peer: str | None,
    xff: str | None,
    forwarded_header: str | None,
    real_ip: str | None,
    trusted: TrustedProxies,
) -> str:
    peer_addr = parse_ip(peer)
    if peer_addr is None:
        return ""
    if peer_addr not in trusted:
        return str(peer_addr)
    forwarded = _forwarded_client(
        {"x-forwarded-for": xff or "", "forwarded": forwarded_header or ""}, trusted
    )
    if forwarded is None:
        forwarded = parse_ip(real_ip)
    return str(forwarded if forwarded is not None else peer_addr)


def _forwarded_client(headers: Mapping[str, str], trusted: TrustedProxies) -> IPAddress | None:
    xff = headers.get("x-forwarded-for")
    if xff:
        return _walk_chain(xff.split(","), trusted)
    rfc7239 = headers.get("forwarded")
    if rfc7239:
        return _walk_chain(_forwarded_for_values(rfc7239), trusted)
    return None


def _walk_chain(hops: Iterable[str], trusted: TrustedProxies) -> IPAddress | None:
    """Right to left: the first hop that is not a trusted proxy is the client.

    Every entry right of it was appended by a proxy we trust; anything further left was supplied by
    the client and may be forged. An unparsable hop ends the walk with no answer, and a chain made
    only of trusted hops yields its leftmost (an internal client).
    """
    leftmost_trusted: IPAddress | None = None
    for raw in reversed(list(hops)):
        if not raw.strip():
            continue
        addr = parse_ip(raw)
        if addr is None:
            return None
        if addr not in trusted:
            return addr
        leftmost_trusted = addr
    return leftmost_trusted


def _forwarded_for_values(header: str) -> list[str]:
    """The ``for=`` value of each element of an RFC 7239 Forwarded header, in order."""
    values: list[str] = []
    for element in header.split(","):
        for pair in element.split(";"):
            key, sep, value = pair.partition("=")
            if sep and key.strip().lower() == "for":
                # An element without a usable for= (e.g. "for=unknown") still counts as a hop.
                values.append(value.strip() or "-")
                break
        else:
            values.append("-")
    return values


def _is_port_suffix(rest: str) -> bool:
    return rest == "" or (rest.startswith(":") and rest[1:].isdigit())
