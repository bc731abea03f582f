"""npm registry client for one package: version metadata, then the tarball, checked against its sha512.

Stdlib only (urllib, hashlib): two GET requests do not justify an HTTP client dependency.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO

import msgspec

from openpanel_lite import __version__

DEFAULT_TIMEOUT_S = 60.0
MAX_METADATA_BYTES = 1 << 20
_CHUNK = 1 << 20
# Everything a broken connection or server can raise while we read a response.
_NETWORK_ERRORS = (OSError, http.client.HTTPException, ValueError)


class GeoDataError(Exception):
    """Fetching or installing GeoIP data failed; nothing was changed on disk."""


class PackageRelease(msgspec.Struct, frozen=True):
    """The registry's answer: which tarball to fetch and its expected sha512."""

    name: str
    version: str
    tarball: str
    integrity: str


def fetch_release(metadata_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> PackageRelease:
    """Read ``dist.tarball`` and ``dist.integrity`` from the registry's version document."""
    try:
        with _open_url(metadata_url, timeout, accept="application/json") as response:
            body = response.read(MAX_METADATA_BYTES + 1)
    except _NETWORK_ERRORS as e:
        raise GeoDataError(f"cannot fetch {metadata_url}: {_reason(e)}") from None
    if len(body) > MAX_METADATA_BYTES:
        raise GeoDataError(f"package metadata from {metadata_url} is larger than {MAX_METADATA_BYTES} bytes")
    try:
        doc = json.loads(body)
        dist = doc["dist"]
        release = PackageRelease(
            name=str(doc["name"]),
            version=str(doc["version"]),
            tarball=str(dist["tarball"]),
            integrity=str(dist["integrity"]),
        )
    except (ValueError, KeyError, TypeError):
        raise GeoDataError(
            f"{metadata_url} is not npm package metadata with dist.tarball/integrity"
        ) from None
    if not tarball_url_allowed(metadata_url, release.tarball):
        raise GeoDataError(f"refusing tarball URL {release.tarball!r} (must be https, or match the registry)")
    return release


def tarball_url_allowed(metadata_url: str, tarball_url: str) -> bool:
    """https always; plain http only when the metadata itself came over http (a local mirror)."""
    meta_scheme = urllib.parse.urlsplit(metadata_url).scheme
    parts = urllib.parse.urlsplit(tarball_url)
    allowed = {"https"} if meta_scheme == "https" else {"http", "https"}
    return parts.scheme in allowed and bool(parts.hostname)


def sha512_integrity(integrity: str) -> bytes:
    """The sha512 digest from an npm ``integrity`` (Subresource Integrity) string."""
    for token in integrity.split():
        algo, _, b64 = token.partition("-")
        if algo == "sha512":
            try:
                digest = base64.b64decode(b64.split("?")[0], validate=True)
            except ValueError:
                break
            if len(digest) == hashlib.sha512().digest_size:
                return digest
    raise GeoDataError(f"no usable sha512 in integrity {integrity!r}")


def download_tarball(url: str, dest: Path, timeout: float, max_bytes: int) -> bytes:
    """Stream ``url`` into ``dest`` and return its sha512; the size cap is enforced while reading."""
    hasher = hashlib.sha512()
    size = 0
    try:
        with _open_url(url, timeout, accept="application/octet-stream") as response, dest.open("xb") as out:
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise GeoDataError(f"{url} is larger than {max_bytes} bytes")
                hasher.update(chunk)
                out.write(chunk)
    except _NETWORK_ERRORS as e:
        raise GeoDataError(f"cannot download {url}: {_reason(e)}") from None
    return hasher.digest()


# --------------------------------------------------------------------------------------------
# HTTP


class _NoDowngradeRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never from https to plain http."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.full_url.startswith("https:") and not newurl.startswith("https:"):
            raise urllib.error.URLError(f"refusing redirect from https to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_NoDowngradeRedirect)


def _open_url(url: str, timeout: float, *, accept: str) -> IO[bytes]:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r}")
    request = urllib.request.Request(
        url, headers={"Accept": accept, "User-Agent": f"openpanel-lite/{__version__} (geoip download)"}
    )
    response: IO[bytes] = _opener.open(request, timeout=timeout)
    return response


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return str(e) or type(e).__name__
