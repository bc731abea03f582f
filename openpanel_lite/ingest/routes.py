"""Ingest routes: POST /track (+ OPTIONS preflight), GET /track/device-id, legacy /event and /profile*.

Thin wrappers: the flow lives in `IngestService`. Every public ingest response allows any origin
(openpanel-facts §1.8); the per-project allow-list is enforced inside auth.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler

from openpanel_lite import logs
from openpanel_lite.ingest.headers import LowerCaseHeaders
from openpanel_lite.ingest.service import MAX_BODY_BYTES, IngestService, LegacyKind, Reply, RequestMeta
from openpanel_lite.ingest.tracker_route import tracker_js

_CORS = {"access-control-allow-origin": "*", "vary": "Origin"}


def _meta(request: Request[Any, Any, Any]) -> RequestMeta:
    headers = LowerCaseHeaders()
    # Repeated lines (X-Forwarded-For from several proxies) are joined so the rightmost hop stays last.
    for name, value in request.headers.multi_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return RequestMeta(peer=request.client.host if request.client else None, headers=headers)


async def _guarded(call: Awaitable[Reply]) -> Reply:
    """An unexpected error still answers with CORS headers, so browsers see a 500, not a CORS failure."""
    try:
        return await call
    except Exception as e:
        logs.error("ingest_error", error=f"{type(e).__name__}: {e}")
        return Reply(500, "Internal server error")


def _respond(reply: Reply) -> Response[Any]:
    headers = {**_CORS, **reply.headers}
    if isinstance(reply.body, str):
        return Response(reply.body, status_code=reply.status, media_type="text/plain", headers=headers)
    return Response(
        msgspec.json.encode(reply.body),
        status_code=reply.status,
        media_type="application/json",
        headers=headers,
    )


@post("/track", request_max_body_size=MAX_BODY_BYTES, summary="OpenPanel-compatible ingest")
async def track(request: Request[Any, Any, Any], ingest: NamedDependency[IngestService]) -> Response[Any]:
    shed = ingest.shed()
    if shed is not None:
        return _respond(shed)
    body = await request.body()
    return _respond(await _guarded(ingest.track(body, _meta(request))))


@route("/track", http_method=[HttpMethod.OPTIONS], include_in_schema=False)
async def track_preflight(request: Request[Any, Any, Any]) -> Response[Any]:
    """CORS preflight as upstream answers it: any origin, GET/HEAD/POST, requested headers echoed."""
    if "origin" not in request.headers:
        return Response("Invalid Preflight Request", status_code=400, media_type="text/plain")
    requested = request.headers.get("access-control-request-headers", "")
    return Response(
        b"",
        status_code=204,
        headers={
            "access-control-allow-origin": "*",
            "access-control-allow-methods": "GET,HEAD,POST",
            "access-control-allow-headers": requested,
            "access-control-max-age": "604800",
            "vary": "Origin, Access-Control-Request-Headers",
        },
    )


@get("/track/device-id", summary="Device and live session id for the caller")
async def device_id(request: Request[Any, Any, Any], ingest: NamedDependency[IngestService]) -> Response[Any]:
    return _respond(await _guarded(ingest.device_id(_meta(request))))


# The preflight handler is listed first: Litestar adds its own OPTIONS handler to a path that has none yet.
def _legacy(path: str, kind: LegacyKind) -> HTTPRouteHandler:
    async def handler(
        request: Request[Any, Any, Any], ingest: NamedDependency[IngestService]
    ) -> Response[Any]:
        shed = ingest.shed()
        if shed is not None:
            return _respond(shed)
        body = await request.body()
        return _respond(await _guarded(ingest.legacy(kind, body, _meta(request))))

    handler.__name__ = f"legacy_{kind}"
    return post(path, request_max_body_size=MAX_BODY_BYTES, summary=f"Deprecated v0 {kind} endpoint")(handler)


legacy_event = _legacy("/event", "event")
legacy_profile = _legacy("/profile", "profile")
legacy_increment = _legacy("/profile/increment", "increment")
legacy_decrement = _legacy("/profile/decrement", "decrement")

router = Router(
    path="/",
    route_handlers=[
        track_preflight,
        track,
        device_id,
        legacy_event,
        legacy_profile,
        legacy_increment,
        legacy_decrement,
        tracker_js,
    ],
)
