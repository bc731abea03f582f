"""GET /op1.js: our browser tracker (web/static/tracker/op1.js, built from op1.src.js), served next to /track.

The file is read once, on first use. Published tracker versions never change (a change is op2.js), and the
snippet loads `/op1.js?v=<version>`, the first 8 hex digits of the file's sha256: a request whose `v` is the
current file's version may be cached for a year as immutable. Plain `/op1.js`, which existing OpenPanel
snippets load once their host points here, and a `v` of another build get a day of caching; the ETag lets a
browser revalidate for free afterwards.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any, Final

from litestar import Request, Response, get

from openpanel_lite import paths

TRACKER_FILE: Final = "static/tracker/op1.js"
CONTENT_TYPE: Final = "application/javascript; charset=utf-8"
CACHE_CONTROL: Final = "public, max-age=86400"
CACHE_CONTROL_VERSIONED: Final = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class TrackerFile:
    body: bytes
    etag: str  # quoted strong validator, as sent in the ETag header
    version: str  # the `v` query parameter of the snippet's URL: first 8 hex digits of the sha256


@functools.cache
def tracker_file() -> TrackerFile:
    body = (paths.web_dir() / TRACKER_FILE).read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    return TrackerFile(body=body, etag=f'"{digest[:32]}"', version=digest[:8])


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against a comma-separated list, or `*`."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


@get("/op1.js", sync_to_thread=False, include_in_schema=False)
def tracker_js(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The tracker script, loadable from any origin: a year's immutable cache for the current version's
    URL (`?v=<version>`), a day's otherwise."""
    tracker = tracker_file()
    versioned = request.query_params.get("v") == tracker.version
    headers = {
        "cache-control": CACHE_CONTROL_VERSIONED if versioned else CACHE_CONTROL,
        "etag": tracker.etag,
        "access-control-allow-origin": "*",
    }
    if etag_matches(request.headers.get("if-none-match"), tracker.etag):
        return Response(b"", status_code=304, headers=headers, media_type=CONTENT_TYPE)
    return Response(tracker.body, status_code=200, headers=headers, media_type=CONTENT_TYPE)
