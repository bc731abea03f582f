"""Ingest authentication (openpanel-facts §1.2): client id, Origin allow-list, client secret, filters.

Deviations from upstream, on purpose (§10.2, §10.3): wildcard origins are anchored on a label
boundary, and only a *verified* secret counts (for revenue and for skipping bot checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec

from openpanel_lite.meta import clients as clients_mod
from openpanel_lite.meta import projects as projects_mod
from openpanel_lite.meta.clients import Client
from openpanel_lite.meta.db import MetaDB
from openpanel_lite.meta.project_filters import IpFilter, ProfileIdFilter, ProjectFilter
from openpanel_lite.meta.projects import Project

# Lowercase UUID, version nibble unchecked, as upstream's check (§1.2 step 2).
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?/?$")

K = TypeVar("K")
V = TypeVar("V")


class AuthError(Exception):
    """401 with a text/plain body equal to the message."""


class Authorized(msgspec.Struct, frozen=True):
    client: Client
    project: Project
    # True only when the request carried the client's correct secret.
    secret_verified: bool


class TTLCache(Generic[K, V]):
    """A small LRU with a time-to-live per entry (in-process stand-in for upstream's Redis caches)."""

    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock

    def get(self, key: K) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = (self._clock() + self._ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


def clean_domain(value: str) -> str:
    """Upstream's cleanDomain: lowercase, drop the scheme, one leading 'www.' and a trailing '/'."""
    text = value.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.removeprefix("www.")
    return text.removesuffix("/")


# Each site sends one or two origins: cache the decision (bounded, so random origins only churn it).
@functools.lru_cache(maxsize=4096)
def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether an Origin header matches a project's CORS list.

    `*` accepts any well-formed origin; `example.com` (or `https://example.com`) matches that host and
    port exactly; `*.example.com` matches any subdomain on a label boundary, never `example.com.evil.net`.
    """
    if not origin:
        return False
    text = origin.strip().lower()
    if not _ORIGIN.match(text):
        return False  # "null", userinfo tricks, paths: not a browser origin we accept
    host = clean_domain(text)
    # Wildcards test the full host: www.example.com is a subdomain of *.example.com.
    full_host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text).removesuffix("/")
    for entry in allowed:
        pattern = clean_domain(entry)
        if not pattern:
            continue
        if pattern == "*":
            return True
        if pattern.startswith("*."):
            suffix = pattern[1:]  # ".example.com" (optionally with a port)
            if full_host.endswith(suffix) and len(full_host) > len(suffix) and "*" not in suffix:
                return True
        elif host == pattern:
            return True
    return False


def ip_blocked(ip: str, project: Project) -> bool:
    networks = _ip_filters(project.filters)
    if not ip or not networks:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)


@functools.lru_cache(maxsize=256)
def _ip_filters(filters: tuple[ProjectFilter, ...]) -> tuple[IPNetwork, ...]:
    # Parsed once per filter set (a project edit makes a new tuple); invalid entries never match.
    out: list[IPNetwork] = []
    for f in filters:
        if isinstance(f, IpFilter):
            with contextlib.suppress(ValueError):
                out.append(ipaddress.ip_network(f.ip, strict=False))
    return tuple(out)


def profile_blocked(profile_id: str | None, project: Project) -> bool:
    return profile_id is not None and any(
        isinstance(f, ProfileIdFilter) and f.profile_id == profile_id for f in project.filters
    )


class IngestAuth:
    """Authenticates ingest requests against the metadata DB, with short-lived caches.

    Secret checks cost one scrypt (tens of ms), so they run in a thread and their results are cached
    under an HMAC of the secret with a per-process key: the plaintext never becomes a cache key.
    """

    def __init__(self, meta: MetaDB, *, ttl_s: float = 30.0, secret_ttl_s: float = 300.0) -> None:
        self._meta = meta
        self._clients: TTLCache[str, Client | None] = TTLCache(10_000, ttl_s)
        self._projects: TTLCache[str, Project | None] = TTLCache(10_000, ttl_s)
        self._secrets: TTLCache[bytes, bool] = TTLCache(10_000, secret_ttl_s)
        self._key = secrets.token_bytes(32)

    def invalidate(self) -> None:
        """Forget cached clients, projects and secret checks (after a dashboard edit)."""
        self._clients.clear()
        self._projects.clear()
        self._secrets.clear()

    def client(self, client_id: str) -> Client | None:
        cached = self._clients.get(client_id)
        if cached is None:
            cached = clients_mod.get_client(self._meta, client_id)
            self._clients.put(client_id, cached)
        return cached if cached is not None and cached.active else None

    def project(self, project_id: str) -> Project | None:
        cached = self._projects.get(project_id)
        if cached is None:
            cached = projects_mod.get_project(self._meta, project_id)
            self._projects.put(project_id, cached)
        return cached

    async def verify_secret(self, client_id: str, secret: str) -> bool:
        key = hmac.new(self._key, f"{client_id}\0{secret}".encode(), hashlib.sha256).digest()
        cached = self._secrets.get(key)
        if cached is not None:
            return cached
        client = await asyncio.to_thread(clients_mod.authenticate_client, self._meta, client_id, secret)
        ok = client is not None
        self._secrets.put(key, ok)
        return ok

    async def authorize(
        self,
        *,
        client_id: str | None,
        client_secret: str | None,
        origin: str | None,
        ip: str,
        profile_id: str | None,
        has_revenue: bool,
    ) -> Authorized:
        """Run upstream's checks in order; raise AuthError with upstream's message on failure."""
        if not client_id:
            raise AuthError("Ingestion: Missing client id")
        if not _UUID.match(client_id):
            raise AuthError("Ingestion: Client ID must be a valid UUIDv4")
        client = self.client(client_id)
        if client is None:
            raise AuthError("Ingestion: Invalid client id")
        project = self.project(client.project_id)
        if project is None:
            raise AuthError("Ingestion: Client has no project")
        if ip_blocked(ip, project):
            raise AuthError("Ingestion: IP address is blocked by project filter")
        if profile_blocked(profile_id, project):
            raise AuthError("Ingestion: Profile id is blocked by project filter")
        verified = bool(client_secret) and await self.verify_secret(client_id, client_secret or "")
        if has_revenue and not verified and not project.allow_unsafe_revenue_tracking:
            raise AuthError("Ingestion: Revenue tracking is not allowed without a client secret")
        if verified or origin_allowed(origin, project.cors):
            return Authorized(client=client, project=project, secret_verified=verified)
        raise AuthError("Ingestion: Invalid cors or secret")
