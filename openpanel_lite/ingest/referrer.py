"""Referrer classification (openpanel-facts §3.7): referrer URL or utm_source/ref -> name and type.

Pure and cached; the host table is generated into referrer_data.py by scripts/gen_referrers.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import urlsplit

import msgspec

from openpanel_lite.ingest.referrer_data import REFERRER_PATHS, REFERRER_PATTERNS, REFERRERS
from openpanel_lite.ingest.urls import clean_url, hostname

# Query keys naming the source, most specific first (upstream: utm_source ?? ref ?? utm_referrer).
SOURCE_KEYS = ("utm_source", "ref", "utm_referrer")

# A leading 'www', 'ww2', 'www3'… or 'search' label is not part of the site's identity.
_LEADING_LABEL = re.compile(r"w+\d*|search")
# Second levels that sit between a name and its country code: google.co.uk, google.com.br.
_GENERIC_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "edu", "gov", "ac", "gob"})
# A bare 'host.tld[:port][/…]' with no scheme, e.g. 'www.twitter.com'.
_SCHEMELESS_HOST = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)+(:\d+)?([/?#]|$)", re.IGNORECASE)


class Referrer(msgspec.Struct, frozen=True):
    """A classified source. ``type`` is search, social, ai, email, tech, paid, commerce, content or ""."""

    name: str
    type: str
    url: str


class ReferrerColumns(msgspec.Struct, frozen=True):
    """The three stored event columns ``referrer``, ``referrer_name`` and ``referrer_type``."""

    referrer: str
    referrer_name: str
    referrer_type: str


NO_REFERRER = Referrer(name="", type="", url="")


@lru_cache(maxsize=4096)
def parse_referrer(url: str) -> Referrer:
    """Classify a referrer URL by its hostname; unknown hosts give name "" and type "".

    ``url`` is the input (cut at 2000 chars) without one trailing slash. A URL without a scheme
    ('www.twitter.com') is read as a hostname.
    """
    text = clean_url(url)
    host, path = _host_and_path(text)
    name, type_ = (_classify(host, path) if host else None) or ("", "")
    return Referrer(name=name, type=type_, url=text.removesuffix("/"))


def referrer_from_query(query: Mapping[str, str]) -> Referrer | None:
    """The source named by utm_source, else ref, else utm_referrer (None when all are absent).

    Matched case-insensitively against a host, the host + '.com', an entry's name, then as a
    hostname ('google.de'); an unknown source is kept as its own name with type "".
    """
    for key in SOURCE_KEYS:
        value = query.get(key)
        if isinstance(value, str) and value.strip():
            name, type_ = _classify_source(clean_url(value).lower())
            return Referrer(name=name, type=type_, url="")
    return None


def resolve_referrer(
    referrer_url: str | None, path_url: str | None, query: Mapping[str, str]
) -> ReferrerColumns:
    """The stored referrer columns for an event.

    ``referrer_url`` is ``__referrer``, ``path_url`` is ``__path`` and ``query`` its parsed query.
    A referrer on the page's own host (internal navigation) or without a hostname is dropped; the
    UTM source still applies: name = utm.name || parsed.name || parsed.url, type = utm.type || parsed.type.
    """
    parsed = _external_referrer(referrer_url, hostname(path_url or "")) if referrer_url else NO_REFERRER
    utm = referrer_from_query(query) if query else None
    return ReferrerColumns(
        referrer=parsed.url,
        referrer_name=(utm.name if utm else "") or parsed.name or parsed.url,
        referrer_type=(utm.type if utm else "") or parsed.type,
    )


# A site's pages and its few referrers repeat: the pair's verdict is cached (bounded).
@lru_cache(maxsize=8192)
def _external_referrer(referrer_url: str, page_host: str) -> Referrer:
    candidate = parse_referrer(referrer_url)
    host = _host_and_path(candidate.url)[0]
    if host and not _same_site(host, page_host):
        return candidate
    return NO_REFERRER


def _same_site(referrer_host: str, page_host: str) -> bool:
    # 'www.example.com' -> 'example.com' is still internal navigation.
    return bool(page_host) and referrer_host.removeprefix("www.") == page_host.removeprefix("www.")


def _host_and_path(url: str) -> tuple[str, str]:
    if "://" not in url and _SCHEMELESS_HOST.match(url):
        url = "//" + url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "", ""
    return host.rstrip("."), parts.path


@lru_cache(maxsize=4096)
def _classify_source(source: str) -> tuple[str, str]:
    found = REFERRERS.get(source) or REFERRERS.get(source + ".com") or _BY_NAME.get(source)
    if found is None:
        host, path = _host_and_path(source)
        found = _classify(host, path) if host else None
    return found or (source, "")


def _classify(host: str, path: str) -> tuple[str, str] | None:
    """Look ``host`` up: exact, without 'www.', then lossy (no 'www'/'m' labels), then as a '{}' pattern.

    Path rules ('x.com/i/grok') are tried for every candidate before any plain host match, so a
    path-specific entry beats the host's general one.
    """
    light = _light_host(host)
    candidates = list(dict.fromkeys((host, host.removeprefix("www."), light)))
    pattern = _country_pattern(light)
    for key in (*candidates, pattern):
        for prefix, name, type_ in REFERRER_PATHS.get(key, ()):
            if path == prefix or path.startswith(prefix + "/"):
                return name, type_
    for key in candidates:
        found = REFERRERS.get(key)
        if found:
            return found
    return REFERRER_PATTERNS.get(pattern)


def _light_host(host: str) -> str:
    """'www2.m.example.com' -> 'example.com': drop a leading www/search label and any 'm' label."""
    labels = host.split(".")
    if len(labels) > 2 and _LEADING_LABEL.fullmatch(labels[0]):
        labels = labels[1:]
    kept = [label for i, label in enumerate(labels) if label != "m" or i >= len(labels) - 2]
    return ".".join(kept)


def _country_pattern(host: str) -> str:
    """Replace country codes by '{}': 'google.co.uk' -> 'google.{}', 'de.bing.com' -> '{}.bing.com'.

    Any two-letter label counts: every two-letter TLD is a country code, and a two-letter label
    elsewhere only matters when the Matomo data has a '{}' pattern in that place.
    """
    labels = host.split(".")
    if len(labels) < 2:
        return host
    if _is_country(labels[-1]):
        labels.pop()
        if len(labels) > 1 and labels[-1] in _GENERIC_SECOND_LEVEL:
            labels.pop()
        labels.append("{}")
    return ".".join("{}" if i < len(labels) - 1 and _is_country(lab) else lab for i, lab in enumerate(labels))


def _is_country(label: str) -> bool:
    return len(label) == 2 and label.isascii() and label.isalpha()


def _names() -> dict[str, tuple[str, str]]:
    """Lowercase entry name -> (name, type), first in host order, for utm_source=Google."""
    by_name: dict[str, tuple[str, str]] = {}
    for name, type_ in (*REFERRERS.values(), *REFERRER_PATTERNS.values()):
        by_name.setdefault(name.lower(), (name, type_))
    for rules in REFERRER_PATHS.values():
        for _, name, type_ in rules:
            by_name.setdefault(name.lower(), (name, type_))
    return by_name


_BY_NAME = _names()
