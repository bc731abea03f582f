"""The `/track` envelope and its payload types (openpanel-facts §1.6), validated by hand so that
error messages match upstream's zod wording: `body/<path> <message>`.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from openpanel_lite.ingest.blocklist import BLOCKED_EVENT_NAME_MESSAGE, is_blocked_event_name
from openpanel_lite.ingest.properties import MAX_DEPTH, MAX_KEY_BYTES, MAX_PROPERTIES, MAX_VALUE_BYTES

PAYLOAD_TYPES: tuple[str, ...] = (
    "track",
    "identify",
    "increment",
    "decrement",
    "alias",
    "replay",
    "group",
    "assign_group",
)
RESERVED_NAMES = ("session_start", "session_end")
# Close to zod's email check: one @, no spaces, a dot in the domain part.
_EMAIL = re.compile(r"^(?!\.)[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]+$")


class ValidationFailed(Exception):
    """A 400 with upstream's message shape."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"body/{path} {message}" if path else f"body {message}")
        self.path = path


class TrackPayload(msgspec.Struct, frozen=True):
    name: str
    properties: dict[str, Any]
    profile_id: str | None
    groups: tuple[str, ...]


class IdentifyPayload(msgspec.Struct, frozen=True):
    profile_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    avatar: str | None
    properties: dict[str, Any]


class IncrementPayload(msgspec.Struct, frozen=True):
    profile_id: str
    property: str
    value: float
    # +1 for increment, -1 for decrement.
    direction: int


class GroupPayload(msgspec.Struct, frozen=True):
    id: str
    type: str
    name: str
    properties: dict[str, Any]


class AssignGroupPayload(msgspec.Struct, frozen=True):
    group_ids: tuple[str, ...]
    profile_id: str | None


Payload = TrackPayload | IdentifyPayload | IncrementPayload | GroupPayload | AssignGroupPayload


class Envelope(msgspec.Struct, frozen=True):
    type: str
    payload: Payload
    client_id: str | None
    client_secret: str | None


class Unsupported(Exception):
    """A known payload type we answer with a plain 400 (alias, replay)."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_MISSING: Any = object()


def _expected(path: str, expected: str, value: Any) -> ValidationFailed:
    got = "undefined" if value is _MISSING else _kind(value)
    return ValidationFailed(path, f"Invalid input: expected {expected}, received {got}")


def _string(obj: dict[str, Any], key: str, path: str, *, required: bool, min_len: int = 1) -> str | None:
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and not required):
        if required:
            raise _expected(f"{path}/{key}", "string", value)
        return None
    if not isinstance(value, str):
        raise _expected(f"{path}/{key}", "string", value)
    if len(value) < min_len:
        raise ValidationFailed(f"{path}/{key}", f"Too small: expected string to have >={min_len} characters")
    return value


def _profile_id(obj: dict[str, Any], path: str, *, required: bool) -> str | None:
    """profileId is a non-empty string or a number (sent by some SDKs); stored as a string."""
    value = obj.get("profileId", _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise _expected(f"{path}/profileId", "string", value)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _expected(f"{path}/profileId", "string", value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _expected(f"{path}/profileId", "string", value)
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    if not text:
        raise ValidationFailed(f"{path}/profileId", "Too small: expected string to have >=1 characters")
    return text


def _properties(obj: dict[str, Any], path: str) -> dict[str, Any]:
    value = obj.get("properties", _MISSING)
    if value is _MISSING or value is None:
        return {}
    if not isinstance(value, dict):
        raise _expected(f"{path}/properties", "record", value)
    _check_limits(value, f"{path}/properties")
    return value


def _check_limits(props: dict[str, Any], path: str) -> None:
    """Reject properties over our limits with a 400 naming the limit (reliability.md §5).

    Counted as stored: nested objects and arrays flatten to one property per leaf (a.b, a.0).
    """
    leaves = 0
    stack: list[tuple[Any, str, int]] = [(props, path, 1)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationFailed(where, f"Too deep: properties may nest at most {MAX_DEPTH} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            name = str(key)
            if isinstance(key, str) and len(name.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                raise ValidationFailed(
                    where, f"Property key longer than {MAX_KEY_BYTES} bytes: {name[:32]!r}…"
                )
            if isinstance(child, dict | list):
                stack.append((child, f"{where}/{name}", depth + 1))
                continue
            leaves += 1
            if leaves > MAX_PROPERTIES:
                raise ValidationFailed(path, f"Too many properties: at most {MAX_PROPERTIES}")
            if isinstance(child, str) and len(child.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
                raise ValidationFailed(
                    f"{where}/{name}", f"Property value longer than {MAX_VALUE_BYTES} bytes"
                )


def _string_list(obj: dict[str, Any], key: str, path: str, *, required: bool) -> tuple[str, ...]:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise _expected(f"{path}/{key}", "array", value)
        return ()
    if not isinstance(value, list):
        raise _expected(f"{path}/{key}", "array", value)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _expected(f"{path}/{key}/{i}", "string", item)
    return tuple(value)


def _track(p: dict[str, Any]) -> TrackPayload:
    name = _string(p, "name", "payload", required=True)
    assert name is not None
    if name in RESERVED_NAMES:
        raise ValidationFailed(
            "payload/name", "Event name cannot be one of the reserved names: session_start, session_end"
        )
    if is_blocked_event_name(name):
        raise ValidationFailed("payload/name", BLOCKED_EVENT_NAME_MESSAGE)
    props = _properties(p, "payload")
    if name == "revenue" and "__revenue" in props:
        rev = props["__revenue"]
        if isinstance(rev, bool) or not isinstance(rev, int) or rev < 0:
            raise ValidationFailed(
                "payload/properties/__revenue", "__revenue must be an integer (no floats or strings)"
            )
    return TrackPayload(
        name=name,
        properties=props,
        profile_id=_profile_id(p, "payload", required=False),
        groups=_string_list(p, "groups", "payload", required=False),
    )


def _identify(p: dict[str, Any]) -> IdentifyPayload:
    profile_id = _profile_id(p, "payload", required=True)
    assert profile_id is not None
    email = _string(p, "email", "payload", required=False, min_len=0)
    if email and not _EMAIL.match(email):
        raise ValidationFailed("payload/email", "Invalid email address")
    avatar = _string(p, "avatar", "payload", required=False, min_len=0)
    if avatar and not _URL.match(avatar):
        raise ValidationFailed("payload/avatar", "Invalid URL")
    return IdentifyPayload(
        profile_id=profile_id,
        first_name=_string(p, "firstName", "payload", required=False, min_len=0),
        last_name=_string(p, "lastName", "payload", required=False, min_len=0),
        email=email or None,
        avatar=avatar or None,
        properties=_properties(p, "payload"),
    )


def _increment(p: dict[str, Any], direction: int) -> IncrementPayload:
    profile_id = _profile_id(p, "payload", required=True)
    prop = _string(p, "property", "payload", required=True)
    assert profile_id is not None and prop is not None
    value = p.get("value", _MISSING)
    if value is _MISSING or value is None:
        value = 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _expected("payload/value", "number", value)
    try:
        number = float(value)  # a JSON integer beyond float range is not a usable number either
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _expected("payload/value", "number", value)
    if value <= 0:
        raise ValidationFailed("payload/value", "Too small: expected number to be >0")
    return IncrementPayload(profile_id=profile_id, property=prop, value=number, direction=direction)


def _group(p: dict[str, Any]) -> GroupPayload:
    values = [_string(p, key, "payload", required=True) for key in ("id", "type", "name")]
    gid, gtype, gname = (v or "" for v in values)
    return GroupPayload(id=gid, type=gtype, name=gname, properties=_properties(p, "payload"))


def _assign_group(p: dict[str, Any]) -> AssignGroupPayload:
    return AssignGroupPayload(
        group_ids=_string_list(p, "groupIds", "payload", required=True),
        profile_id=_profile_id(p, "payload", required=False),
    )


def parse_envelope(body: Any) -> Envelope:
    """Validate a decoded JSON body; raise ValidationFailed (400) or Unsupported (400)."""
    if not isinstance(body, dict):
        raise ValidationFailed("", f"Invalid input: expected object, received {_kind(body)}")
    kind = body.get("type", _MISSING)
    if kind not in PAYLOAD_TYPES:
        expected = " | ".join(f"'{t}'" for t in PAYLOAD_TYPES)
        raise ValidationFailed("type", f"Invalid discriminator value. Expected {expected}")
    raw = body.get("payload", _MISSING)
    if not isinstance(raw, dict):
        raise _expected("payload", "object", raw)
    if kind == "alias":
        raise Unsupported("Alias is not supported")
    if kind == "replay":
        raise Unsupported("Session replay is not supported by this server")
    payload: Payload
    if kind == "track":
        payload = _track(raw)
    elif kind == "identify":
        payload = _identify(raw)
    elif kind in ("increment", "decrement"):
        payload = _increment(raw, 1 if kind == "increment" else -1)
    elif kind == "group":
        payload = _group(raw)
    else:
        payload = _assign_group(raw)
    client_id = body.get("clientId")
    client_secret = body.get("clientSecret")
    return Envelope(
        type=str(kind),
        payload=payload,
        client_id=client_id if isinstance(client_id, str) else None,
        client_secret=client_secret if isinstance(client_secret, str) else None,
    )
