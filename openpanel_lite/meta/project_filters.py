"""Project-level filters (OpenPanel ``Project.filters``): drop traffic by IP, profile id or event match.

The JSON shape is OpenPanel's: ``{type:'ip', ip}``, ``{type:'profile_id', profileId}``,
``{type:'event', name, filters[], segment}`` (openpanel-facts §1.13).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Literal

import msgspec

from openpanel_lite.meta.errors import MetaError

FilterOperator = Literal[
    "is", "isNot", "contains", "doesNotContain", "startsWith", "endsWith", "regex", "isNull", "isNotNull",
    "gt", "lt", "gte", "lte", "inCohort", "notInCohort",
]  # fmt: skip
FilterValue = str | int | float | bool | None


class EventPropertyFilter(msgspec.Struct, frozen=True, kw_only=True):
    """One condition of an event filter (OpenPanel ``zChartEventFilter``, without cohort ids)."""

    name: str
    operator: FilterOperator
    value: tuple[FilterValue, ...] = ()
    type: Literal["string", "number", "date", "datetime", "boolean"] | None = None


class IpFilter(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="ip"):
    """Reject requests from this IP address (or CIDR network, an openpanel-lite extension)."""

    ip: str


class ProfileIdFilter(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="profile_id"):
    profile_id: str = msgspec.field(name="profileId")


class EventFilter(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="event"):
    """Drop events named ``name`` whose properties match every condition in ``filters``."""

    name: str
    filters: tuple[EventPropertyFilter, ...] = ()
    segment: str | None = None


ProjectFilter = IpFilter | ProfileIdFilter | EventFilter
_FILTERS_TYPE = tuple[ProjectFilter, ...]


def _normalize(item: ProjectFilter) -> ProjectFilter:
    if isinstance(item, IpFilter):
        text = item.ip.strip()
        try:
            if "/" in text:
                return IpFilter(ip=str(ipaddress.ip_network(text, strict=False)))
            return IpFilter(ip=str(ipaddress.ip_address(text)))
        except ValueError:
            raise MetaError(f"IP filter {item.ip!r} is not an IP address or CIDR network") from None
    if isinstance(item, ProfileIdFilter):
        if not item.profile_id.strip():
            raise MetaError("profile_id filter needs a non-empty profileId")
        return ProfileIdFilter(profile_id=item.profile_id.strip())
    if not item.name.strip():
        raise MetaError("event filter needs an event name")
    return item


def parse_filters(raw: object) -> tuple[ProjectFilter, ...]:
    """Validate filters given as JSON-like data (lists of dicts) or as filter Structs."""
    try:
        if isinstance(raw, Iterable) and not isinstance(raw, str | bytes | dict):
            # Structs are re-encoded so their field values get the same type checks as JSON input.
            raw = msgspec.to_builtins(list(raw))
        items = msgspec.convert(raw, _FILTERS_TYPE)
    except msgspec.ValidationError as e:
        raise MetaError(f"invalid project filter: {e}") from None
    return tuple(_normalize(item) for item in items)


def encode_filters(filters: tuple[ProjectFilter, ...]) -> str:
    return msgspec.json.encode(filters).decode()


def decode_filters(text: str) -> tuple[ProjectFilter, ...]:
    return msgspec.json.decode(text, type=_FILTERS_TYPE)
