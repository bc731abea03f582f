"""The `/track` request flow (openpanel-facts §1.5): shed, decode, validate, authorise, bot check,
enrich, spool, answer. Routes are thin wrappers around `IngestService`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import msgspec

from openpanel_lite import ids
from openpanel_lite.bus import EventBus
from openpanel_lite.ingest import identity, schemas
from openpanel_lite.ingest.auth import AuthError, Authorized, IngestAuth
from openpanel_lite.ingest.bots import detect_bot
from openpanel_lite.ingest.client_ip import TrustedProxies, resolve_client_ip
from openpanel_lite.ingest.pipeline import Identity, Pipeline, RequestInfo, Rows
from openpanel_lite.ingest.profiles import NotANumber, ProfileNotFound
from openpanel_lite.ingest.spool import SpoolUnavailable
from openpanel_lite.ingest.spool_file import SpoolError
from openpanel_lite.metrics import Metrics
from openpanel_lite.storage.rows import BotEventRow

# Bodies above this are refused before parsing (reliability §5: 64 KiB, beacon-sized).
MAX_BODY_BYTES = 64 * 1024
# Identical payloads from one ip+origin within this window are one event (upstream's 100 ms lock).
DEDUP_WINDOW_S = 0.1
RETRY_AFTER_S = 2
# A commit that failed for another reason than a cap (lock contention, I/O error): worth a quick retry.
COMMIT_FAILED_RETRY_AFTER_S = 1
LegacyKind = Literal["event", "profile", "increment", "decrement"]


class Reply(msgspec.Struct, frozen=True):
    """A response the route sends as-is: JSON when `body` is not a str, else text/plain."""

    status: int
    body: Any
    headers: dict[str, str] = {}


class Overloaded(Exception):
    """The spool cannot take more right now: 503 + Retry-After."""


class Sink(Protocol):
    """Where accepted rows go: the durable spool (which feeds the store writer)."""

    def accepting(self) -> bool: ...

    async def write(self, rows: Rows, dedup_key: str | None) -> bool:
        """Durably accept the rows; False when dedup_key was already accepted (a retry)."""
        ...


class RequestMeta(msgspec.Struct, frozen=True):
    peer: str | None
    headers: Mapping[str, str]


def _error(status: int, message: str, error: str = "Error") -> Reply:
    return Reply(status, {"status": status, "error": error, "message": message})


def _unavailable(retry_after_s: int) -> Reply:
    return Reply(
        503,
        {"status": 503, "error": "Service Unavailable", "message": "Ingest is overloaded; retry later"},
        {"retry-after": str(retry_after_s)},
    )


def _ok(ident: Identity) -> Reply:
    return Reply(200, {"deviceId": ident.device_id, "sessionId": ident.session_id})


def _event_id(payload: schemas.Payload) -> str | None:
    """A track event's `__eventId`, which the spool dedups durably (SDK retries), when usable."""
    if isinstance(payload, schemas.TrackPayload):
        event_id = payload.properties.get("__eventId")
        if isinstance(event_id, str) and 0 < len(event_id) <= 64:
            return event_id
    return None


class IngestService:
    def __init__(
        self,
        *,
        auth: IngestAuth,
        pipeline: Pipeline,
        sink: Sink,
        metrics: Metrics,
        trusted_proxies: TrustedProxies,
        bus: EventBus,
    ) -> None:
        self.bus = bus
        self.auth = auth
        self.pipeline = pipeline
        self.sink = sink
        self.metrics = metrics
        self.trusted = trusted_proxies
        # Content keys of requests that were kept, with the time each began (the 100 ms lock).
        self._recent: dict[bytes, float] = {}
        # Content keys of requests still being processed: when each began, and whether it was kept.
        self._inflight: dict[bytes, tuple[float, asyncio.Future[bool]]] = {}
        # Upstream's window; an attribute so tests on a slow machine can widen it.
        self.duplicate_window_s = DEDUP_WINDOW_S

    # ------------------------------------------------------------------------------------------
    # upstream's 100 ms content lock (same client, body, ip and origin), in memory

    def _content_key(self, client_id: str, body: bytes, ip: str, origin: str | None) -> bytes:
        return hashlib.blake2b(
            b"\0".join([client_id.encode(), body, ip.encode(), (origin or "").encode()])
        ).digest()

    async def _is_duplicate(self, key: bytes) -> bool:
        """True when an identical request that began less than the window before this one was kept.

        Only a request that was kept makes later ones duplicates: an identical request that arrives
        while the first is still in flight waits for its outcome, and is processed itself when the
        first was not kept (503, 500, 4xx). Answering it 200 at once would acknowledge an event that
        may never be stored.
        """
        arrived = time.monotonic()
        while True:
            pending = self._inflight.get(key)
            if pending is None:
                break
            began, kept = pending
            if await asyncio.shield(kept) and arrived - began < self.duplicate_window_s:
                return True
            # Not kept (or kept too long before this one arrived): look again; another identical
            # request may have taken over meanwhile.
        if len(self._recent) > 10_000:
            now = time.monotonic()
            self._recent = {k: t for k, t in self._recent.items() if now - t < self.duplicate_window_s}
        seen = self._recent.get(key)
        return seen is not None and arrived - seen < self.duplicate_window_s

    async def _authorize(
        self, meta: RequestMeta, env: schemas.Envelope, profile_id: str | None, has_revenue: bool
    ) -> tuple[Authorized, str]:
        h = meta.headers
        client_id = h.get("openpanel-client-id") or h.get("mixan-client-id") or env.client_id
        secret = h.get("openpanel-client-secret") or h.get("mixan-client-secret") or env.client_secret
        base_ip = resolve_client_ip(meta.peer, h, self.trusted, secret_authenticated=False)
        authorized = await self.auth.authorize(
            client_id=client_id,
            client_secret=secret,
            origin=h.get("origin"),
            ip=base_ip,
            profile_id=profile_id,
            has_revenue=has_revenue,
        )
        if not authorized.secret_verified:
            return authorized, base_ip
        override = None
        if isinstance(env.payload, schemas.TrackPayload):
            override = env.payload.properties.get("__ip")
        ip = resolve_client_ip(meta.peer, h, self.trusted, secret_authenticated=True, override=override)
        return authorized, ip

    def shed(self) -> Reply | None:
        """The 503 to send when the spool cannot take more; callers check before reading the body."""
        return None if self.sink.accepting() else _unavailable(RETRY_AFTER_S)

    async def track(self, body: bytes, meta: RequestMeta) -> Reply:
        """POST /track (the caller has already checked `shed()`)."""
        try:
            decoded = msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError):
            return _error(
                400, "Body is not valid JSON but content-type is set to 'application/json'", "FastifyError"
            )
        return await self._process(decoded, body, meta)

    async def legacy(self, kind: LegacyKind, body: bytes, meta: RequestMeta) -> Reply:
        """The deprecated v0 endpoints (§1.11): same pipeline, text replies with status 202."""
        try:
            decoded = msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError):
            return Reply(400, "Body is not valid JSON")
        if not isinstance(decoded, dict):
            return Reply(400, "Body must be a JSON object")
        d: dict[str, Any] = decoded
        envelope: dict[str, Any]
        if kind == "event":
            payload = {
                "name": d.get("name"),
                "properties": d.get("properties"),
                "profileId": d.get("profileId"),
            }
            envelope = {"type": "track", "payload": {k: v for k, v in payload.items() if v is not None}}
        elif kind == "profile":
            envelope = {"type": "identify", "payload": d}
        else:
            payload = {
                "profileId": d.get("profileId"),
                "property": d.get("property"),
                "value": d.get("value"),
            }
            envelope = {"type": kind, "payload": {k: v for k, v in payload.items() if v is not None}}
        reply = await self._process(envelope, body, meta)
        if reply.status == 200:
            profile_id = d.get("profileId")
            return Reply(202, "ok" if kind == "event" else str(profile_id))
        if reply.status == 404:
            return Reply(404, "Not found")
        if (
            reply.status == 400
            and isinstance(reply.body, dict)
            and "not a number" in str(reply.body["message"])
        ):
            return Reply(400, "Not number")
        return reply

    async def _process(self, decoded: Any, body: bytes, meta: RequestMeta) -> Reply:
        started = time.perf_counter()
        try:
            env = schemas.parse_envelope(decoded)
        except schemas.ValidationFailed as e:
            return _error(400, str(e))
        except schemas.Unsupported as e:
            return _error(400, str(e), "Bad Request")
        payload = env.payload
        profile_id = getattr(payload, "profile_id", None)
        has_revenue = isinstance(payload, schemas.TrackPayload) and "__revenue" in payload.properties
        try:
            authorized, ip = await self._authorize(meta, env, profile_id, has_revenue)
        except AuthError as e:
            self.metrics.events_dropped_total.labels(reason="unauthorized").inc()
            return Reply(401, str(e))
        project = authorized.project
        ua = meta.headers.get("user-agent")
        if not authorized.secret_verified:
            bot = detect_bot(ua)
            if bot is not None:
                return await self._bot(bot.name, bot.type, project.id, payload)
        if _event_id(payload) is not None:
            # The spool dedups `__eventId` durably, in the same transaction as the append; the
            # content lock would only add a way to answer 200 for a copy that failed.
            return await self._store(authorized, ip, meta, payload, started)
        key = self._content_key(authorized.client.id, body, ip, meta.headers.get("origin"))
        if await self._is_duplicate(key):
            self.metrics.events_dropped_total.labels(reason="duplicate").inc()
            ident = self.pipeline.identity_for(self._request(authorized, ip, meta), {})
            return _ok(ident)
        began = time.monotonic()
        kept: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (began, kept)
        stored = False
        try:
            reply = await self._store(authorized, ip, meta, payload, started)
            # 200 means stored, or a durable duplicate of a stored copy, or nothing to store.
            stored = reply.status == 200
        finally:
            del self._inflight[key]
            if stored:
                self._recent[key] = began
            kept.set_result(stored)
        return reply

    async def _store(
        self, authorized: Authorized, ip: str, meta: RequestMeta, payload: schemas.Payload, started: float
    ) -> Reply:
        """Enrich, spool and publish one authorised, non-duplicate request."""
        project = authorized.project
        req = self._request(authorized, ip, meta)
        rows = Rows()
        try:
            ident = await self._dispatch(req, payload, rows)
        except ProfileNotFound:
            return Reply(404, {"status": 404, "message": "Profile not found"})
        except NotANumber:
            return Reply(400, {"status": 400, "message": "Property value is not a number"})
        event_id = _event_id(payload)
        dedup_key = None if event_id is None else f"{project.id}:{event_id}"
        try:
            accepted = not rows or await self.sink.write(rows, dedup_key)
        except SpoolUnavailable as e:
            self.metrics.events_dropped_total.labels(reason="overloaded").inc()
            return _unavailable(e.retry_after_s)
        except SpoolError:
            # The commit failed and nothing was stored: the client should resend soon.
            self.metrics.events_dropped_total.labels(reason="commit_failed").inc()
            return _unavailable(COMMIT_FAILED_RETRY_AFTER_S)
        if not accepted:
            self.metrics.events_dropped_total.labels(reason="duplicate").inc()
            return _ok(ident)
        if isinstance(payload, schemas.TrackPayload) and not rows.events:
            self.metrics.events_dropped_total.labels(reason="project_filter").inc()
        for event in rows.events:
            self.metrics.count_event(project.id, event.name)
        self.bus.publish(rows.events)
        self.metrics.processing_duration.observe(time.perf_counter() - started)
        return _ok(ident)

    def _request(self, authorized: Authorized, ip: str, meta: RequestMeta) -> RequestInfo:
        h = meta.headers
        return RequestInfo(
            project=authorized.project,
            ip=ip,
            user_agent=h.get("user-agent"),
            headers=h,
            secret_verified=authorized.secret_verified,
            sdk_name=h.get("openpanel-sdk-name", "")[:64],
            sdk_version=h.get("openpanel-sdk-version", "")[:64],
            received_at=datetime.now(UTC),
        )

    async def _dispatch(self, req: RequestInfo, payload: schemas.Payload, rows: Rows) -> Identity:
        p = self.pipeline
        if isinstance(payload, schemas.TrackPayload):
            ident = p.track(req, payload, rows)
            extra = payload.properties.get("__identify")
            if isinstance(extra, dict) and len(extra) > 1:
                try:
                    identify = schemas.parse_envelope({"type": "identify", "payload": extra}).payload
                except (schemas.ValidationFailed, schemas.Unsupported):
                    return ident
                if isinstance(identify, schemas.IdentifyPayload):
                    await p.identify(req, identify, rows)
            return ident
        if isinstance(payload, schemas.IdentifyPayload):
            return await p.identify(req, payload, rows)
        if isinstance(payload, schemas.IncrementPayload):
            return await p.add_to_property(req, payload, rows)
        if isinstance(payload, schemas.AssignGroupPayload):
            return await p.assign_group(req, payload, rows)
        return p.group(req, payload, rows)

    async def _bot(self, name: str, kind: str, project_id: str, payload: schemas.Payload) -> Reply:
        self.metrics.events_dropped_total.labels(reason="bot").inc()
        if isinstance(payload, schemas.TrackPayload):
            path = payload.properties.get("__path", payload.properties.get("path"))
            if isinstance(path, str) and path:
                row = BotEventRow(
                    id=ids.uuid4(),
                    project_id=project_id,
                    name=name,
                    type=kind,
                    path=path[:2000],
                    created_at=datetime.now(UTC),
                )
                await self.sink.write(Rows(bots=[row]), None)
        return Reply(202, {"bot": {"name": name, "type": kind}})

    # ------------------------------------------------------------------------------------------
    # GET /track/device-id (§1.12)

    async def device_id(self, meta: RequestMeta) -> Reply:
        h = meta.headers
        ip = resolve_client_ip(meta.peer, h, self.trusted, secret_authenticated=False)
        try:
            authorized = await self.auth.authorize(
                client_id=h.get("openpanel-client-id") or h.get("mixan-client-id"),
                client_secret=h.get("openpanel-client-secret") or h.get("mixan-client-secret"),
                origin=h.get("origin"),
                ip=ip,
                profile_id=None,
                has_revenue=False,
            )
        except AuthError as e:
            return Reply(401, str(e))
        if not ip:
            return Reply(400, {"status": 400, "message": "Missing ip address"})
        ua = h.get("user-agent")
        if not ua:
            return Reply(400, {"status": 400, "message": "Missing header: user-agent"})
        project_id = authorized.project.id
        now_ms = int(time.time() * 1000)
        salts = self.pipeline.salts
        candidates = [("current", identity.device_id(ua, ip, project_id, salts.current))]
        if salts.previous != salts.current:
            candidates.append(("previous", identity.device_id(ua, ip, project_id, salts.previous)))
        for label, device in candidates:
            session = self.pipeline.tracker.live_session(project_id, device, now_ms)
            if session is not None:
                return Reply(
                    200,
                    {
                        "deviceId": device,
                        "sessionId": session,
                        "message": f"{label} session exists for this device id",
                    },
                )
        return Reply(
            200,
            {
                "deviceId": candidates[0][1],
                "sessionId": "",
                "message": "No session exists for this device id",
            },
        )
