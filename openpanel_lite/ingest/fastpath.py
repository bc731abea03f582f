"""A raw-ASGI fast path for `POST /track`, in front of the Litestar app.

Measured (docs/benchmarks.md): Litestar's routing, dependency injection and Request/Response objects
cost more than the ingest work itself on this route. Every other request, `OPTIONS /track` included,
goes to Litestar, which also keeps documenting `/track` in the OpenAPI schema.

Overload (reliability §0 item 4, R08) is handled here too, before any body is read: ingest requests
(`/track` and the legacy routes) get 503 + Retry-After while the event loop lags (sustained: a
few probes in a row), at most
`max_inflight_requests` of them are processed at once (the rest wait, unread, so the loop never
holds more ingest work than that), and `/healthz` is answered here, ahead of Litestar.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from openpanel_lite import logs
from openpanel_lite.ingest.headers import LowerCaseHeaders
from openpanel_lite.ingest.service import MAX_BODY_BYTES, Reply, RequestMeta
from openpanel_lite.ops import HealthAnswer, LoopLagMonitor
from openpanel_lite.runtime import Runtime

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CORS = [(b"access-control-allow-origin", b"*"), (b"vary", b"Origin")]
_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
_encode = msgspec.json.Encoder().encode
# The deprecated v0 ingest routes: shed and gated here, then handled by Litestar.
LEGACY_INGEST = frozenset({"/event", "/profile", "/profile/increment", "/profile/decrement"})
LAG_RETRY_AFTER_S = 1
BUSY_RETRY_AFTER_S = 2
# A shed answer is held back this long: a client that ignores Retry-After and resends at once (a load
# tool, a broken SDK) would otherwise spin, and answering its 503s would eat the capacity shedding
# was meant to protect. A sleeping request costs a timer; SDKs that honour Retry-After never notice.
SHED_DELAY_S = 0.05


class IngestGate:
    """At most `limit` ingest requests at once; up to `max_waiting` more wait in arrival order.

    Waiting requests cost a parked future each: their bodies stay unread in the server, and the loop
    is not woken for them until a slot frees, so a burst of completions never brings more than
    `limit` requests' work into one loop iteration.
    """

    def __init__(self, limit: int, max_waiting: int) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self.inflight = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self) -> bool:
        """True once a slot is held (the caller must `release`); False when too many already wait."""
        if self.inflight < self.limit and not self._waiting:
            self.inflight += 1
            return True
        if len(self._waiting) >= self.max_waiting:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just before the cancellation
            elif waiter in self._waiting:  # `release` may have dropped it already (done: skipped)
                self._waiting.remove(waiter)
            raise
        return True  # `release` handed its slot over: `inflight` already counts this request

    def release(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.inflight -= 1


class TrackFastPath:
    def __init__(self, app: Any, runtime: Runtime) -> None:
        # `app` is the Litestar app (its ASGI signature is narrower than the generic one here).
        self.app: ASGIApp = app
        self.runtime = runtime
        ing = runtime.cfg.ingest
        self.shed_lag_s = ing.shed_loop_lag_ms / 1000
        self.gate = IngestGate(ing.max_inflight_requests, ing.max_waiting_requests)
        self.lag = LoopLagMonitor()
        self.health = HealthAnswer(runtime)
        m = runtime.metrics
        m.event_loop_lag.set_function(lambda: self.lag.lag_s)
        m.ingest_inflight.labels(state="processing").set_function(lambda: self.gate.inflight)
        m.ingest_inflight.labels(state="waiting").set_function(lambda: self.gate.waiting)
        self._shed_lag = m.ingest_shed_total.labels(reason="loop_lag")
        self._shed_busy = m.ingest_shed_total.labels(reason="busy")
        self._shed_spool = m.ingest_shed_total.labels(reason="spool")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            self.lag.start(asyncio.get_running_loop())
            path = scope["path"]
            method = scope["method"]
            if method == "POST" and (path == "/track" or path in LEGACY_INGEST):
                await self._ingest(scope, receive, send, path == "/track")
                return
            if path == "/healthz" and method == "GET":
                await self._healthz(send)
                return
            await self.app(scope, receive, send)
        elif kind == "lifespan":
            self.lag.start(asyncio.get_running_loop())
            try:
                await self.app(scope, receive, send)
            finally:
                self.lag.stop()
                self.health.close()
        else:
            await self.app(scope, receive, send)

    async def _healthz(self, send: Send) -> None:
        status, body = await self.health.answer()
        headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _ingest(self, scope: Scope, receive: Receive, send: Send, track: bool) -> None:
        """Shed on lag, then hold a gate slot while the request is processed."""
        if self.shed_lag_s and self.lag.sustained_lag_s > self.shed_lag_s:
            self._shed_lag.inc()
            await asyncio.sleep(SHED_DELAY_S)
            await _send(send, _overloaded(LAG_RETRY_AFTER_S))
            return
        shed = self.runtime.ingest.service.shed()
        if shed is not None:  # the spool refuses (a cap, low disk): before waiting for a slot
            self._shed_spool.inc()
            await asyncio.sleep(SHED_DELAY_S)
            await _send(send, shed)
            return
        if not await self.gate.acquire():
            self._shed_busy.inc()
            await asyncio.sleep(SHED_DELAY_S)
            await _send(send, _overloaded(BUSY_RETRY_AFTER_S))
            return
        try:
            if track:
                await self._track(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            self.gate.release()

    async def _track(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = LowerCaseHeaders()
        for raw_name, raw_value in scope["headers"]:
            # ASGI servers (granian included) give header names in lower case.
            name = raw_name.decode("latin-1")
            value = raw_value.decode("latin-1")
            if name in headers:
                # Repeated lines (X-Forwarded-For from several proxies) keep the rightmost hop last.
                value = f"{headers[name]}, {value}"
            headers[name] = value
        service = self.runtime.ingest.service
        shed = service.shed()
        if shed is not None:
            # Checked again now that a slot is held (the spool may have filled meanwhile); still
            # before reading the body: an overloaded server should do as little as possible.
            self._shed_spool.inc()
            await _send(send, shed)
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            await _send(send, _too_large())
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _send(send, _too_large())
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        client = scope.get("client")
        meta = RequestMeta(peer=client[0] if client else None, headers=headers)
        try:
            reply = await service.track(b"".join(chunks), meta)
        except Exception as e:  # a 500 keeps its CORS headers so browsers can see it
            logs.error("ingest_error", error=f"{type(e).__name__}: {e}")
            reply = Reply(500, "Internal server error")
        await _send(send, reply)


def _overloaded(retry_after_s: int) -> Reply:
    message = "Ingest is overloaded; retry later"
    body = {"status": 503, "error": "Service Unavailable", "message": message}
    return Reply(503, body, {"retry-after": str(retry_after_s)})


def _too_large() -> Reply:
    message = f"Request body is larger than {MAX_BODY_BYTES} bytes"
    return Reply(413, {"status": 413, "error": "Payload Too Large", "message": message})


async def _send(send: Send, reply: Reply) -> None:
    if isinstance(reply.body, str):
        body, ctype = reply.body.encode(), _TEXT
    else:
        body, ctype = _encode(reply.body), _JSON
    headers = [(b"content-type", ctype), (b"content-length", b"%d" % len(body)), *_CORS]
    if reply.headers:
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
