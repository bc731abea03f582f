"""A raw-ASGI fast path for `POST /track`, in front of the Litestar app.

Measured (docs/benchmarks.md): Litestar's routing, dependency injection and Request/Response objects
cost more than the ingest work itself on this route. Every other request, `OPTIONS /track` included,
goes to Litestar, which also keeps documenting `/track` in the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from openpanel_lite import logs
from openpanel_lite.ingest.headers import LowerCaseHeaders
from openpanel_lite.ingest.service import MAX_BODY_BYTES, Reply, RequestMeta
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


class TrackFastPath:
    def __init__(self, app: Any, runtime: Runtime) -> None:
        # `app` is the Litestar app (its ASGI signature is narrower than the generic one here).
        self.app: ASGIApp = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/track":
            await self._track(scope, receive, send)
        else:
            await self.app(scope, receive, send)

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
            # Shed before reading the body: an overloaded server should do as little as possible.
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
