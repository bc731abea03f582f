"""Input checks shared by the meta modules: emails, host names, origins, CORS entries, timezones.

Each function returns the normalised value or raises MetaError with a message naming the bad input.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from openpanel_lite.meta.errors import MetaError

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_EMAIL_LOCAL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}$")
# "javascript:…", "data:…": a scheme without "//" (a port would start with a digit).
_SCHEME_ONLY = re.compile(r"^[a-z][a-z0-9+.-]*:(?!\d)", re.IGNORECASE)
MAX_EMAIL_LEN = 254
MAX_NAME_LEN = 255


def _ascii_host(host: str) -> str | None:
    """Lower-case, IDNA-encoded host name, or None if it is not a valid DNS name."""
    host = host.strip().rstrip(".").lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if len(host) > 253 or not _HOSTNAME.match(host):
        return None
    return host


def normalize_email(email: str) -> str:
    """Trimmed, lower-cased address with a plausible local part and a DNS domain (``admin@localhost`` ok)."""
    local, sep, domain = email.strip().rpartition("@")
    host = _ascii_host(domain) if sep else None
    if not sep or host is None or not _EMAIL_LOCAL.match(local):
        raise MetaError(f"{email!r} is not a valid email address")
    normalized = f"{local.lower()}@{host}"
    if len(normalized) > MAX_EMAIL_LEN:
        raise MetaError(f"email address is longer than {MAX_EMAIL_LEN} characters")
    return normalized


def normalize_name(name: str, *, what: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise MetaError(f"{what} must not be empty")
    if len(cleaned) > MAX_NAME_LEN:
        raise MetaError(f"{what} is longer than {MAX_NAME_LEN} characters")
    return cleaned


def _host_or_ip(host: str) -> str | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return _ascii_host(host)
    return f"[{address}]" if address.version == 6 else str(address)


def _split_origin(value: str, *, what: str, allow_wildcard: bool) -> tuple[str, str, str]:
    """(scheme or "", host, ":port" or "") of ``[scheme://]host[:port][/]``; refuses paths and userinfo."""
    raw = value.strip()
    has_scheme = "://" in raw
    if not has_scheme and _SCHEME_ONLY.match(raw):
        raise MetaError(f"{what} {value!r}: only http:// and https:// are allowed")
    parts = urlsplit(raw if has_scheme else f"//{raw}")
    scheme = parts.scheme.lower()
    if has_scheme and scheme not in ("http", "https"):
        raise MetaError(f"{what} {value!r}: only http:// and https:// are allowed")
    if parts.username is not None or parts.password is not None:
        raise MetaError(f"{what} {value!r} must not contain a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MetaError(f"{what} {value!r} must be an origin only (no path, query or fragment)")
    try:
        port = parts.port
    except ValueError:
        raise MetaError(f"{what} {value!r} has an invalid port") from None
    hostname = parts.hostname or ""
    wildcard = allow_wildcard and hostname.startswith("*.")
    host = _host_or_ip(hostname[2:] if wildcard else hostname)
    if host is None or (wildcard and host.startswith("[")):
        raise MetaError(f"{what} {value!r} is not a valid host name")
    return scheme, ("*." + host if wildcard else host), (f":{port}" if port is not None else "")


def normalize_domain(domain: str) -> str:
    """A project's site as an origin: ``example.com`` -> ``https://example.com``."""
    scheme, host, port = _split_origin(domain, what="domain", allow_wildcard=False)
    return f"{scheme or 'https'}://{host}{port}"


def normalize_cors_entry(entry: str) -> str:
    """An allowed origin: ``*`` (any), ``[scheme://]host[:port]`` or ``[scheme://]*.host``.

    A scheme-less entry is kept scheme-less, meaning "http or https"; matching is done by the
    ingest layer on parsed hosts, never with a regex built from the entry.
    """
    if entry.strip() == "*":
        return "*"
    scheme, host, port = _split_origin(entry, what="CORS entry", allow_wildcard=True)
    return f"{scheme}://{host}{port}" if scheme else f"{host}{port}"


def check_timezone(name: str) -> str:
    """An IANA zone name that zoneinfo knows, e.g. ``Europe/Berlin``; refuses paths and abbreviations."""
    # Checking the known-name set first keeps out paths and host-specific files ZoneInfo would load.
    if name != "UTC" and name not in _zone_names():
        raise MetaError(f"unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MetaError(f"unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin'") from None
    return name


# Files some systems ship in the zoneinfo folder that are not portable zone names.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES
