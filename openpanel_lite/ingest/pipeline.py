"""The ingest pipeline: one authorised request → enriched rows (events, sessions, profiles, groups).

Runs in the event loop, all in memory: user agent, geo, identity, path, referrer, properties, sessions.
The rows it returns are spooled durably by the caller before the request is answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from openpanel_lite import ids
from openpanel_lite.ingest import identity, properties, urls
from openpanel_lite.ingest.bots import bot_properties, soft_bot_reasons
from openpanel_lite.ingest.event_filters import should_drop
from openpanel_lite.ingest.geo import UNKNOWN_GEO, GeoInfo, GeoLookup
from openpanel_lite.ingest.page_visits import unsessioned_view
from openpanel_lite.ingest.profiles import GEO_UA_KEYS, ProfileBook, geo_ua_properties
from openpanel_lite.ingest.referrer import resolve_referrer
from openpanel_lite.ingest.schemas import (
    AssignGroupPayload,
    GroupPayload,
    IdentifyPayload,
    IncrementPayload,
    TrackPayload,
)
from openpanel_lite.ingest.sessions import SCREEN_VIEW, SESSION_START, SessionTracker
from openpanel_lite.ingest.useragent import UserAgentInfo, apply_overrides, parse_user_agent
from openpanel_lite.meta.projects import Project
from openpanel_lite.storage.rows import (
    BotEventRow,
    EventRow,
    GroupRow,
    PageViewRow,
    ProfileLink,
    ProfileRow,
    SessionRow,
    ViewDurationRow,
)

# Optional client event id (our tracker sends one): the dedup key for retries, never stored as a property.
EVENT_ID_KEY = "__eventId"
# A client clock may run ahead by this much before we use the server's time (§1.9).
MAX_FUTURE = timedelta(minutes=1)
# Older client timestamps are kept but never touch sessions (§1.9 "isTimestampFromThePast").
MAX_PAST = timedelta(minutes=15)


class RequestInfo(msgspec.Struct, frozen=True):
    """What the route knows about the request once it is authorised; the IP stays in memory only."""

    project: Project
    ip: str
    user_agent: str | None
    headers: Mapping[str, str]
    secret_verified: bool
    sdk_name: str
    sdk_version: str
    received_at: datetime


class Rows(msgspec.Struct):
    """Everything one request produced, in write order."""

    events: list[EventRow] = msgspec.field(default_factory=list)
    sessions: list[SessionRow] = msgspec.field(default_factory=list)
    profiles: list[ProfileRow] = msgspec.field(default_factory=list)
    groups: list[GroupRow] = msgspec.field(default_factory=list)
    bots: list[BotEventRow] = msgspec.field(default_factory=list)
    links: list[ProfileLink] = msgspec.field(default_factory=list)
    durations: list[ViewDurationRow] = msgspec.field(default_factory=list)
    page_views: list[PageViewRow] = msgspec.field(default_factory=list)

    def __len__(self) -> int:
        tables = (
            *(self.events, self.sessions, self.profiles, self.groups, self.bots),
            *(self.links, self.durations, self.page_views),
        )
        return sum(len(rows) for rows in tables)


class Identity(msgspec.Struct, frozen=True):
    device_id: str
    session_id: str


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def event_time(raw: object, now: datetime) -> tuple[datetime, bool]:
    """(created_at, backdated) from properties.__timestamp (§1.9); server time when unusable."""
    at: datetime | None = None
    if isinstance(raw, str) and raw.strip():
        try:
            at = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            at = None
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            at = datetime.fromtimestamp(float(raw) / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            at = None
    if at is None or at - now > MAX_FUTURE:
        return now, False
    at = at.astimezone(UTC)
    return at, now - at > MAX_PAST


class Pipeline:
    """Per-process ingest state: geo database, live sessions, profile book, daily salts."""

    def __init__(
        self,
        *,
        tracker: SessionTracker,
        profiles: ProfileBook,
        geo: GeoLookup | None,
        salts: identity.Salts,
    ) -> None:
        self.tracker = tracker
        self.profiles = profiles
        self.geo = geo
        self.salts = salts

    # ------------------------------------------------------------------------------------------

    def _geo(self, ip: str) -> GeoInfo:
        return self.geo.lookup(ip) if self.geo is not None and ip else UNKNOWN_GEO

    def _device(self, req: RequestInfo, props: Mapping[str, Any], at: datetime) -> str:
        ua = req.user_agent or identity.UNKNOWN_USER_AGENT
        checker = self.tracker.live_checker(req.project.id, _ms(at))
        return identity.choose_device_id(
            ua, req.ip, req.project.id, self.salts, checker, override=props.get("__deviceId")
        )

    def identity_for(self, req: RequestInfo, props: Mapping[str, Any]) -> Identity:
        """deviceId/sessionId for responses that store nothing (identify, groups, device-id)."""
        device = self._device(req, props, req.received_at)
        return Identity(device, self.tracker.session_id_for(req.project.id, device, _ms(req.received_at)))

    # ------------------------------------------------------------------------------------------
    # track

    def track(self, req: RequestInfo, payload: TrackPayload, rows: Rows) -> Identity:
        props = payload.properties
        at, backdated = event_time(props.get("__timestamp"), req.received_at)
        ua_info = apply_overrides(parse_user_agent(req.user_agent), props)
        geo = self._geo(req.ip)
        device = self._device(req, props, at)
        raw_path = props.get("__path", props.get("path"))
        path_url = raw_path if isinstance(raw_path, str) else ""
        parsed = urls.parse_path(path_url)
        raw_ref = props.get("__referrer")
        ref = resolve_referrer(raw_ref if isinstance(raw_ref, str) else None, path_url, parsed.query)
        stored = properties.clean_properties(props, path=parsed)
        stored.pop(EVENT_ID_KEY, None)
        if not req.secret_verified:
            reasons = soft_bot_reasons(req.user_agent, req.headers, False, None)
            stored.update(bot_properties(reasons))
        revenue = props.get("__revenue") if payload.name == "revenue" else 0
        event = EventRow(
            id=_event_uuid(props.get(EVENT_ID_KEY)),
            name=payload.name,
            sdk_name=req.sdk_name,
            sdk_version=req.sdk_version,
            device_id=device,
            profile_id=payload.profile_id or device,
            project_id=req.project.id,
            groups=payload.groups,
            path=parsed.path,
            origin=parsed.origin,
            referrer=ref.referrer,
            referrer_name=ref.referrer_name,
            referrer_type=ref.referrer_type,
            revenue=revenue if isinstance(revenue, int) and not isinstance(revenue, bool) else 0,
            properties=stored,
            created_at=at,
            country=geo.country,
            city=geo.city,
            region=geo.region,
            longitude=geo.longitude,
            latitude=geo.latitude,
            os=ua_info.os,
            os_version=ua_info.os_version,
            browser=ua_info.browser,
            browser_version=ua_info.browser_version,
            device=ua_info.device,
            brand=ua_info.brand,
            model=ua_info.model,
        )
        if should_drop(req.project, payload.name, stored):
            return Identity(device, self.tracker.session_id_for(req.project.id, device, _ms(at)))
        wall_ms = _ms(req.received_at)
        if backdated:
            event = msgspec.structs.replace(event, device_id="", session_id="")
        elif ua_info.is_server:
            outcome = self.tracker.server_event(event, payload.profile_id, _ms(at))
            event = outcome.event
            rows.durations.extend(outcome.durations)
            rows.page_views.extend(outcome.page_views)
        else:
            outcome = self.tracker.client_event(event, wall_ms)
            event = outcome.event
            rows.sessions.extend(outcome.sessions)
            rows.links.extend(outcome.links)
            rows.durations.extend(outcome.durations)
            rows.page_views.extend(outcome.page_views)
            for extra in outcome.events:
                rows.events.append(extra)
                if extra.name == SESSION_START and extra.profile_id == extra.device_id:
                    rows.profiles.append(_anonymous_profile(extra))
        if event.name == SCREEN_VIEW and not event.session_id:
            rows.page_views.append(unsessioned_view(event))
        rows.events.append(event)
        return Identity(event.device_id, event.session_id)

    # ------------------------------------------------------------------------------------------
    # profiles and groups

    async def identify(self, req: RequestInfo, payload: IdentifyPayload, rows: Rows) -> Identity:
        ua_info = apply_overrides(parse_user_agent(req.user_agent), payload.properties)
        geo = self._geo(req.ip)
        props = properties.clean_properties(payload.properties)
        props.update(geo_ua_properties({**msgspec.structs.asdict(geo), **_ua_fields(ua_info)}))
        incoming = ProfileRow(
            id=payload.profile_id,
            is_external=True,
            first_name=payload.first_name or "",
            last_name=payload.last_name or "",
            email=payload.email or "",
            avatar=payload.avatar or "",
            properties=props,
            project_id=req.project.id,
            created_at=req.received_at,
            last_seen_at=req.received_at,
        )
        rows.profiles.append(await self.profiles.upsert(incoming))
        return self.identity_for(req, payload.properties)

    async def add_to_property(self, req: RequestInfo, payload: IncrementPayload, rows: Rows) -> Identity:
        """Raises ProfileNotFound (404) or NotANumber (400) like upstream."""
        row = await self.profiles.add_to_property(
            req.project.id,
            payload.profile_id,
            payload.property,
            payload.value * payload.direction,
            req.received_at,
        )
        rows.profiles.append(row)
        return self.identity_for(req, {})

    async def assign_group(self, req: RequestInfo, payload: AssignGroupPayload, rows: Rows) -> Identity:
        ident = self.identity_for(req, {})
        profile_id = payload.profile_id or ident.device_id
        incoming = ProfileRow(
            id=profile_id,
            is_external=payload.profile_id is not None,
            project_id=req.project.id,
            groups=payload.group_ids,
            created_at=req.received_at,
            last_seen_at=req.received_at,
        )
        rows.profiles.append(await self.profiles.upsert(incoming))
        return ident

    def group(self, req: RequestInfo, payload: GroupPayload, rows: Rows) -> Identity:
        rows.groups.append(
            GroupRow(
                id=payload.id,
                project_id=req.project.id,
                type=payload.type,
                name=payload.name,
                properties=properties.clean_properties(payload.properties),
                created_at=req.received_at,
                # ReplacingMergeTree(version): the newest write wins.
                version=_ms(req.received_at),
            )
        )
        return self.identity_for(req, {})


def _ua_fields(info: UserAgentInfo) -> dict[str, str]:
    return {
        "os": info.os,
        "os_version": info.os_version,
        "browser": info.browser,
        "browser_version": info.browser_version,
        "device": info.device,
        "brand": info.brand,
        "model": info.model,
    }


def _event_uuid(value: object) -> uuid.UUID:
    """A client-supplied event id (our tracker's retry key) becomes the row id when it is a UUID."""
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    return ids.uuid4()


def _anonymous_profile(start: EventRow) -> ProfileRow:
    """Upstream writes a device profile when a session starts (§3.11)."""
    props = {
        "path": start.path,
        "referrer": start.referrer,
        "referrer_name": start.referrer_name,
        "referrer_type": start.referrer_type,
        **geo_ua_properties({key: getattr(start, key) for key in GEO_UA_KEYS}),
    }
    return ProfileRow(
        id=start.device_id,
        is_external=False,
        properties={k: v for k, v in props.items() if v},
        project_id=start.project_id,
        created_at=start.created_at,
        last_seen_at=start.created_at,
    )
