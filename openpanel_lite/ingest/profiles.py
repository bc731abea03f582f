"""Profiles (openpanel-facts §3.11): identify merges, increment/decrement, group assignment.

The latest state of recently touched profiles is kept in memory (upstream keeps it in Redis); a miss
reads the newest stored row. Every change appends a full ProfileRow, newest last_seen_at wins.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import msgspec

from openpanel_lite.storage.rows import ProfileRow

# Keys written from the request's geo and user agent on identify (upstream's profile properties).
GEO_UA_KEYS = (
    "country",
    "city",
    "region",
    "longitude",
    "latitude",
    "os",
    "os_version",
    "browser",
    "browser_version",
    "device",
    "brand",
    "model",
)

Loader = Callable[[str, str], Awaitable[ProfileRow | None]]


class ProfileNotFound(Exception):
    pass


class NotANumber(Exception):
    pass


class ProfileBook:
    """Latest known profile rows, newest first out of an LRU; misses go to `load` (the store)."""

    def __init__(self, load: Loader, max_entries: int = 50_000) -> None:
        self._load = load
        self._max = max_entries
        self._rows: OrderedDict[tuple[str, str], ProfileRow] = OrderedDict()

    async def get(self, project_id: str, profile_id: str) -> ProfileRow | None:
        key = (project_id, profile_id)
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
            return row
        row = await self._load(project_id, profile_id)
        if row is not None:
            self._remember(row)
        return row

    def _remember(self, row: ProfileRow) -> None:
        key = (row.project_id, row.id)
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self._max:
            self._rows.popitem(last=False)

    def forget(self, project_id: str, profile_id: str) -> None:
        self._rows.pop((project_id, profile_id), None)

    async def upsert(self, incoming: ProfileRow) -> ProfileRow:
        """Merge `incoming` into the current profile (if any) and return the row to append."""
        current = await self.get(incoming.project_id, incoming.id)
        merged = incoming if current is None else merge_profiles(current, incoming)
        self._remember(merged)
        return merged

    async def add_to_property(
        self, project_id: str, profile_id: str, prop: str, delta: float, at: datetime
    ) -> ProfileRow:
        """increment/decrement: parseInt(existing or '0') ± delta, like upstream."""
        current = await self.get(project_id, profile_id)
        if current is None:
            raise ProfileNotFound(profile_id)
        base = parse_int(current.properties.get(prop, "0"))
        if base is None:
            raise NotANumber(prop)
        total = base + delta
        text = str(int(total)) if float(total).is_integer() else repr(total)
        row = msgspec.structs.replace(
            current, properties={**current.properties, prop: text}, last_seen_at=max(at, current.last_seen_at)
        )
        self._remember(row)
        return row


def parse_int(text: str) -> int | None:
    """JavaScript parseInt for base 10: leading digits with an optional sign, else None (NaN)."""
    value = text.strip()
    sign = 1
    if value[:1] in "+-" and value:
        sign = -1 if value[0] == "-" else 1
        value = value[1:]
    digits = ""
    for ch in value:
        if not ch.isdigit() or not ch.isascii():
            break
        digits += ch
    return sign * int(digits) if digits else None


def _keep_incoming(new: str, old: str) -> bool:
    return bool(new) or not old


def merge_profiles(current: ProfileRow, incoming: ProfileRow) -> ProfileRow:
    """Incoming wins unless empty over a non-empty value; created_at kept; groups unioned.

    If the stored profile came from a browser and the incoming one from a server SDK, the incoming
    geo and device keys are ignored (a backend call must not relocate the user to the data centre).
    """
    props: dict[str, str] = dict(current.properties)
    server_over_client = (
        incoming.properties.get("device") == "server"
        and current.properties.get("device", "server") != "server"
    )
    for key, value in incoming.properties.items():
        if server_over_client and key in GEO_UA_KEYS:
            continue
        if _keep_incoming(value, props.get(key, "")):
            props[key] = value
    return ProfileRow(
        id=current.id,
        project_id=current.project_id,
        is_external=current.is_external or incoming.is_external,
        first_name=incoming.first_name
        if _keep_incoming(incoming.first_name, current.first_name)
        else current.first_name,
        last_name=incoming.last_name
        if _keep_incoming(incoming.last_name, current.last_name)
        else current.last_name,
        email=incoming.email if _keep_incoming(incoming.email, current.email) else current.email,
        avatar=incoming.avatar if _keep_incoming(incoming.avatar, current.avatar) else current.avatar,
        properties=props,
        groups=tuple(dict.fromkeys((*current.groups, *incoming.groups))),
        created_at=min(current.created_at, incoming.created_at),
        last_seen_at=max(current.last_seen_at, incoming.last_seen_at),
    )


def geo_ua_properties(values: Mapping[str, object]) -> dict[str, str]:
    """The request's geo/UA fields as profile properties (non-empty values only, as strings)."""
    out: dict[str, str] = {}
    for key in GEO_UA_KEYS:
        value = values.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                continue
            out[key] = repr(value)
        else:
            out[key] = str(value)
    return out
