"""GET /op1.js: our browser tracker (web/static/tracker/op1.js), served next to /track.

The file is read once, on first use; published tracker versions never change (a change is op2.js), so a
day of caching is safe and the ETag lets a browser revalidate for free afterwards.
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


@dataclass(frozen=True)
class TrackerFile:
    body: bytes
    etag: str  # quoted strong validator, as sent in the ETag header


@functools.cache
def tracker_file() -> TrackerFile:
    body = (paths.web_dir() / TRACKER_FILE).read_bytes()
    return TrackerFile(body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"')


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
    """The tracker script, cacheable for a day, loadable from any origin."""
    tracker = tracker_file()
    headers = {
        "cache-control": CACHE_CONTROL,
        "etag": tracker.etag,
        "access-control-allow-origin": "*",
    }
    if etag_matches(request.headers.get("if-none-match"), tracker.etag):
        return Response(b"", status_code=304, headers=headers, media_type=CONTENT_TYPE)
    return Response(tracker.body, status_code=200, headers=headers, media_type=CONTENT_TYPE)
