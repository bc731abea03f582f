"""Cookieless identity: the salted device id and the deterministic session id (OpenPanel-compatible).

Pure functions; the salts and the live-session lookup are passed in by the ingest pipeline.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from typing import Literal

import msgspec

DEFAULT_SESSION_TIMEOUT_MS = 1_800_000
# Upstream's route substitutes this when the User-Agent header is absent, so the hash still has a UA.
UNKNOWN_USER_AGENT = "unknown/1.0"
MAX_DEVICE_ID_OVERRIDE_LEN = 64
# A request just after a bucket boundary still belongs to the previous bucket for this long,
# so a visit whose events straddle the boundary by a few ms is not split in two.
MAX_SESSION_GRACE_MS = 5_000


class Salts(msgspec.Struct, frozen=True):
    """The two live daily salts; ``previous`` equals ``current`` on a store with a single salt."""

    current: str
    previous: str


class DeviceChoice(msgspec.Struct, frozen=True):
    """The device id chosen for a request and where it came from.

    ``source``: "override" (``__deviceId``), "current" / "previous" (that salt's id has a live
    session), or "new" (no live session: the current-salt id starts a visit).
    """

    device_id: str
    source: Literal["override", "current", "previous", "new"]


# A visitor sends many events a day with the same inputs: hashing once per visitor-day is enough.
@functools.lru_cache(maxsize=65536)
def device_id(ua: str, ip: str, project_id: str, salt: str) -> str:
    """shake256("ua:ip:project:salt") to 16 bytes, as 32 lowercase hex chars (openpanel-facts §3.1)."""
    return hashlib.shake_256(f"{ua}:{ip}:{project_id}:{salt}".encode()).hexdigest(16)


def session_grace_ms(timeout_ms: int) -> int:
    """How far into a bucket an event still counts for the previous one: min(5 s, timeout / 6)."""
    return min(MAX_SESSION_GRACE_MS, timeout_ms // 6)


def session_bucket(event_ms: int, timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS) -> int:
    """The time bucket a session id is derived from when no live session exists."""
    if timeout_ms <= 0:
        raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
    bucket = event_ms // timeout_ms
    if event_ms - bucket * timeout_ms < session_grace_ms(timeout_ms):
        bucket -= 1
    return bucket


def session_id(
    project_id: str, device_id: str, event_ms: int, timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
) -> str:
    """Deterministic 22-char session id: base64url (no padding) of sha256("sess:v1:…")[:16]."""
    bucket = session_bucket(event_ms, timeout_ms)
    digest = hashlib.sha256(f"sess:v1:{project_id}:{device_id}:{bucket}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def sanitize_device_id_override(value: object) -> str | None:
    """``properties.__deviceId``: a string of 1..64 chars after trimming, else None (ignored)."""
    if not isinstance(value, str):
        return None
    trimmed = value.strip()
    if not 1 <= len(trimmed) <= MAX_DEVICE_ID_OVERRIDE_LEN:
        return None
    return trimmed


def resolve_device(
    ua: str,
    ip: str,
    project_id: str,
    salts: Salts,
    has_live_session: Callable[[str], bool],
    *,
    override: object = None,
) -> DeviceChoice:
    """Pick the device id for a request and say which candidate matched a live session.

    A valid ``__deviceId`` override wins outright (no salt rotation). Otherwise the current-salt id
    is tried, then the previous-salt one, so a visit that crosses the midnight salt rotation keeps
    its id; with no live session either way the current-salt id starts a new visit.
    """
    forced = sanitize_device_id_override(override)
    if forced is not None:
        return DeviceChoice(forced, "override")
    current = device_id(ua, ip, project_id, salts.current)
    if has_live_session(current):
        return DeviceChoice(current, "current")
    if salts.previous != salts.current:
        previous = device_id(ua, ip, project_id, salts.previous)
        if has_live_session(previous):
            return DeviceChoice(previous, "previous")
    return DeviceChoice(current, "new")


def choose_device_id(
    ua: str,
    ip: str,
    project_id: str,
    salts: Salts,
    has_live_session: Callable[[str], bool],
    *,
    override: object = None,
) -> str:
    """The device id for an event: ``resolve_device(...).device_id``."""
    return resolve_device(ua, ip, project_id, salts, has_live_session, override=override).device_id
