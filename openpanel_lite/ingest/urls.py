"""Page URL parsing for `__path` (openpanel-facts §3.6): origin, path, query params and hash.

Follows the WHATWG URL rules upstream gets from `new URL()` closely enough for analytics; never raises.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, quote, urlsplit

import msgspec

MAX_URL_LENGTH = 2000

_DEFAULT_PORTS = {"http": 80, "https": 443}
# WHATWG strips leading/trailing C0 controls and spaces, and removes tabs and newlines anywhere.
_EDGE_JUNK = "".join(chr(c) for c in range(0x21))
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
# Printable ASCII left as is; everything else (space, non-ASCII, controls) is percent-encoded as UTF-8.
# '%' is kept so an already-encoded URL is not encoded twice.
_PATH_SAFE = "".join(c for c in _PRINTABLE if c not in '"#<>?`{}')
_FRAGMENT_SAFE = "".join(c for c in _PRINTABLE if c not in '"<>`')
_PARTIAL_ESCAPE = re.compile(r"%[0-9A-Fa-f]?$")
# WHATWG forbidden host code points (and controls): such a URL does not parse in a browser.
# ':' is left out: an IPv6 literal's host is its address, validated by ip parsing upstream and here.
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/<>?@\[\\\]^|\x7f]")
_SINGLE_DOT = {".", "%2e"}
_DOUBLE_DOT = {"..", ".%2e", "%2e.", "%2e%2e"}


class ParsedPath(msgspec.Struct, frozen=True):
    """`__path` split into the stored columns and the derived properties.

    ``origin`` is "" for a relative path or a screen name; ``query`` is empty when there is none
    (a repeated key keeps its last value, as upstream's ``Object.fromEntries`` does); ``hash`` is
    "#fragment", or "" when there is none.
    """

    path: str
    origin: str
    query: dict[str, str]
    hash: str


def parse_path(value: str | None) -> ParsedPath:
    """Parse an http(s) URL, a '/relative?path#hash' or a screen name; input cut at 2000 chars."""
    path, origin, query, fragment = _parse_cached(value or "")
    return ParsedPath(path=path, origin=origin, query=dict(query), hash=fragment)


@lru_cache(maxsize=8192)  # every event asks for its page's host; pages repeat
def hostname(url: str) -> str:
    """The lowercase hostname of an absolute or '//host' URL, "" when it has none or is malformed."""
    try:
        host = urlsplit(_clean(url)).hostname
    except ValueError:
        return ""
    return (host or "").rstrip(".")


def clean_url(value: str) -> str:
    """The URL as the browser would hold it: tabs/newlines and edge whitespace gone, at most 2000 chars."""
    return _clean(value)


_Parts = tuple[str, str, tuple[tuple[str, str], ...], str]


@lru_cache(maxsize=4096)
def _parse_cached(value: str) -> _Parts:
    # Cached as immutable parts: ParsedPath.query is a fresh dict on every call, so callers may mutate it.
    text = _clean(value)
    if not text:
        return "", "", (), ""
    is_absolute = text[:4].lower() == "http"
    if not is_absolute and not text.startswith("/"):
        return text, "", (), ""  # a screen name (mobile SDKs), kept verbatim
    parts = _split(text, absolute=is_absolute)
    if parts is None:
        return text, "", (), ""  # upstream's `new URL()` throws here and it keeps the raw string
    return parts


def _split(text: str, *, absolute: bool) -> _Parts | None:
    # WHATWG treats '\' like '/' before the query in http(s) URLs.
    cut = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
    text = text[:cut].replace("\\", "/") + text[cut:]
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # bad IPv6 brackets, non-numeric or out-of-range port
        return None
    origin = ""
    if absolute:
        scheme = parts.scheme.lower()
        host = _ascii_host(parts.hostname or "")
        if scheme not in _DEFAULT_PORTS or not host or _FORBIDDEN_HOST.search(host):
            return None  # new URL() throws on these: upstream keeps the raw string as the path
        if ":" in host:
            host = f"[{host}]"
        origin = f"{scheme}://{host}"
        if port is not None and port != _DEFAULT_PORTS[scheme]:
            origin += f":{port}"
    path = quote(_remove_dot_segments(parts.path or "/"), safe=_PATH_SAFE)
    if len(path) > MAX_URL_LENGTH:  # encoding can grow it; do not leave half an escape at the cut
        path = _PARTIAL_ESCAPE.sub("", path[:MAX_URL_LENGTH])
    query = tuple(dict(parse_qsl(parts.query, keep_blank_values=True, errors="replace")).items())
    fragment = "#" + quote(parts.fragment, safe=_FRAGMENT_SAFE) if parts.fragment else ""
    return path, origin, query, fragment


def _clean(value: str) -> str:
    # Lone surrogates cannot be encoded as UTF-8 and would fail later (storage, quoting).
    text = _SURROGATES.sub("", _TAB_NEWLINE.sub("", value[: MAX_URL_LENGTH * 2]))
    return text.strip(_EDGE_JUNK)[:MAX_URL_LENGTH]


def _ascii_host(host: str) -> str:
    """Punycode for international hostnames, as browsers report origins; unchanged when not encodable."""
    host = host.rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _remove_dot_segments(path: str) -> str:
    """Resolve '.' and '..' segments (also written %2e) the way URL parsers do: '/a/b/../c' -> '/a/c'."""
    if not path.startswith("/"):
        path = "/" + path
    segments = path.split("/")[1:]
    out: list[str] = []
    for index, segment in enumerate(segments):
        is_last = index == len(segments) - 1
        lowered = segment.lower()
        if lowered in _DOUBLE_DOT:
            if out:
                out.pop()
            if is_last:
                out.append("")
        elif lowered in _SINGLE_DOT:
            if is_last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)
