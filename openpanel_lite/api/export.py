"""GET /export/events (openpanel-facts §6.1): read/root clients page through a project's events.

Auth: `openpanel-client-id` + `openpanel-client-secret`; read clients see only their own project.
Limited to 100 requests per 10 s per client, like upstream.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Response, Router, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter

from openpanel_lite.api.ratelimit import RateLimiter
from openpanel_lite.ingest.auth import IngestAuth
from openpanel_lite.query import Filter, FilterOperator, QueryError, parse_field
from openpanel_lite.reports.event_list import list_events
from openpanel_lite.runtime import Runtime
from openpanel_lite.storage.sql_list import EventListQuery

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
# camelCase key -> events column (openpanel-facts §6.1 transformEvent).
FIELDS: dict[str, str] = {
    "id": "id",
    "name": "name",
    "deviceId": "device_id",
    "profileId": "profile_id",
    "sessionId": "session_id",
    "projectId": "project_id",
    "createdAt": "created_at",
    "path": "path",
    "duration": "duration",
    "city": "city",
    "country": "country",
    "os": "os",
    "browser": "browser",
    "properties": "properties",
    "region": "region",
    "osVersion": "os_version",
    "browserVersion": "browser_version",
    "origin": "origin",
    "referrer": "referrer",
    "referrerName": "referrer_name",
    "referrerType": "referrer_type",
    "device": "device",
    "brand": "brand",
    "model": "model",
    "longitude": "longitude",
    "latitude": "latitude",
    "sdkName": "sdk_name",
    "sdkVersion": "sdk_version",
    "revenue": "revenue",
    "groups": "groups",
    "importedAt": "imported_at",
}
DEFAULT_FIELDS: tuple[str, ...] = (
    *("id", "name", "deviceId", "profileId", "sessionId", "projectId", "createdAt", "path"),
    *("duration", "city", "country", "os", "browser"),
)
_limiter = RateLimiter(100, 10.0)


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.headers = status, error, message, headers or {}

    def response(self) -> Response[Any]:
        body = {"status": self.status, "error": self.error, "message": self.message}
        return Response(body, status_code=self.status, headers=self.headers)


async def authorize_reader(request: Request[Any, Any, Any], auth: IngestAuth, what: str) -> tuple[str, str]:
    """(client id, client type) of a read/root client with a valid secret, else ApiError."""
    client_id = request.headers.get("openpanel-client-id", "")
    secret = request.headers.get("openpanel-client-secret", "")
    client = auth.client(client_id) if client_id else None
    if client is None or not secret or not await auth.verify_secret(client_id, secret):
        raise ApiError(401, "Unauthorized", f"{what}: Invalid client secret")
    if client.type not in ("read", "root"):
        raise ApiError(403, "Forbidden", f"Client is not allowed to {what.lower()}")
    verdict = _limiter.hit(client_id)
    if not verdict.allowed:
        raise ApiError(
            429,
            "Too Many Requests",
            "You have exceeded the rate limit for this endpoint.",
            verdict.headers(),
        )
    return client_id, client.type


def _many(request: Request[Any, Any, Any], *names: str) -> list[str]:
    values: list[str] = []
    for name in names:
        for raw in request.query_params.getall(name, []):
            values += [v.strip() for v in str(raw).split(",") if v.strip()]
    return values


def _int(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, "Bad Request", f"{name} must be an integer") from None
    if not lo <= number <= hi:
        raise ApiError(400, "Bad Request", f"{name} must be between {lo} and {hi}")
    return number


def parse_bound(value: str | None, tz: str, *, end: bool) -> datetime | None:
    """An ISO date or datetime as naive UTC; a date alone means that whole day in the project's zone."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            local = datetime.combine(day + timedelta(days=1) if end else day, time(0), ZoneInfo(tz))
            return local.astimezone(UTC).replace(tzinfo=None)
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "Bad Request", f"{'end' if end else 'start'} is not an ISO date: {value!r}"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(tz))
    return at.astimezone(UTC).replace(tzinfo=None)


def parse_filters(raw: str | None) -> tuple[Filter, ...]:
    """Upstream's chart filters as JSON: [{"name":"country","operator":"is","value":["SE"]}]."""
    if not raw:
        return ()
    try:
        items = msgspec.json.decode(raw)
        if not isinstance(items, list):
            raise ValueError("not a list")
        out = []
        for item in items:
            values = item.get("value", [])
            out.append(
                Filter(
                    field=parse_field(str(item["name"])),
                    operator=FilterOperator(item["operator"]),
                    values=tuple(values if isinstance(values, list) else [values]),
                )
            )
        return tuple(out)
    except (msgspec.DecodeError, ValueError, KeyError, TypeError, AttributeError, QueryError) as e:
        raise ApiError(400, "Bad Request", f"filters: {e}") from None


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value) if isinstance(value, uuid.UUID) else value


class ExportError(msgspec.Struct, frozen=True):
    status: int
    error: str
    message: str


def _q(description: str, name: str | None = None) -> Any:
    return QueryParameter(description=description, name=name)


_EXPORT_ERRORS = {
    400: ResponseSpec(ExportError, description="A bad parameter"),
    401: ResponseSpec(ExportError, description="No valid client id and secret"),
    403: ResponseSpec(ExportError, description="A write client, or a read client of another project"),
    404: ResponseSpec(ExportError, description="No such project"),
    429: ResponseSpec(ExportError, description="Over 100 requests in 10 s for this client"),
}


# The parameters are declared only so that the OpenAPI schema lists them (the security suite fuzzes
# them with Schemathesis); the handler reads request.query_params itself, as upstream's aliases
# (projectId / project_id, event / events) and comma lists need.
@get(
    "/export/events",
    summary="Export a project's events (read/root clients)",
    responses=_EXPORT_ERRORS,
)
async def export_events(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    doc_project: Annotated[str | None, _q("project id (default: the client's)", "projectId")] = None,
    doc_event: Annotated[list[str] | None, _q("event names; repeatable or comma-separated", "event")] = None,
    doc_profile: Annotated[str | None, _q("only this profile's events", "profileId")] = None,
    doc_start: Annotated[str | None, _q("YYYY-MM-DD or ISO datetime", "start")] = None,
    doc_end: Annotated[str | None, _q("YYYY-MM-DD (inclusive) or ISO datetime", "end")] = None,
    doc_page: Annotated[str | None, _q("page, from 1", "page")] = None,
    doc_limit: Annotated[
        str | None, _q(f"events per page, 1..{MAX_LIMIT} ({DEFAULT_LIMIT})", "limit")
    ] = None,
    doc_filters: Annotated[
        str | None, _q('JSON: [{"name": "path", "operator": "is", "value": ["/"]}]', "filters")
    ] = None,
    doc_includes: Annotated[
        list[str] | None, _q("extra fields, comma-separated or repeated", "includes")
    ] = None,
) -> Response[Any]:
    auth = runtime.ingest.auth
    try:
        client_id, client_type = await authorize_reader(request, auth, "Export")
        own = auth.client(client_id)
        assert own is not None
        qp = request.query_params
        project_id = qp.get("projectId") or qp.get("project_id") or own.project_id
        project = auth.project(project_id)
        if project is None:
            raise ApiError(404, "Not Found", "Project not found")
        if client_type == "read" and project_id != own.project_id:
            raise ApiError(403, "Forbidden", "You do not have access to this project")
        includes = _many(request, "includes")
        unknown = [i for i in includes if i not in FIELDS and i not in ("profile", "meta")]
        if unknown:
            raise ApiError(400, "Bad Request", f"includes: unknown fields {unknown}")
        fields = list(dict.fromkeys([*DEFAULT_FIELDS, *(i for i in includes if i in FIELDS)]))
        page = _int(qp.get("page"), "page", 1, 1, 10**9)
        limit = _int(qp.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        query = EventListQuery(
            project_id=project_id,
            start=parse_bound(qp.get("start"), project.timezone, end=False),
            end=parse_bound(qp.get("end"), project.timezone, end=True),
            names=tuple(_many(request, "event", "events")),
            profile_id=qp.get("profileId") or None,
            filters=parse_filters(qp.get("filters")),
            columns=tuple(FIELDS[f] for f in fields),
            limit=limit,
            offset=(page - 1) * limit,
        )
        result = await asyncio.to_thread(list_events, runtime.store, query)
    except ApiError as e:
        return e.response()
    except QueryError as e:
        return ApiError(400, "Bad Request", str(e)).response()
    data = [{f: _json_value(row[FIELDS[f]]) for f in fields} for row in result.rows]
    if "meta" in includes:
        for item in data:
            item["meta"] = None  # no per-event-name metadata (colour, icon) is kept yet
    if "profile" in includes:
        await _attach_profiles(runtime, project_id, data)
    meta = {
        "count": len(data),
        "totalCount": result.total,
        "pages": max(1, math.ceil(result.total / limit)),
        "current": page,
    }
    return Response({"meta": meta, "data": data})


async def _attach_profiles(runtime: Runtime, project_id: str, data: list[dict[str, Any]]) -> None:
    from openpanel_lite.ingest.state_loaders import load_profile

    cache: dict[str, dict[str, Any] | None] = {}
    for item in data:
        pid = item.get("profileId")
        if not pid:
            item["profile"] = None
            continue
        if pid not in cache:
            row = await asyncio.to_thread(load_profile, runtime.store, project_id, pid)
            cache[pid] = (
                None
                if row is None
                else {
                    "id": row.id,
                    "isExternal": row.is_external,
                    "firstName": row.first_name,
                    "lastName": row.last_name,
                    "email": row.email,
                    "avatar": row.avatar,
                    "properties": row.properties,
                    "createdAt": _json_value(row.created_at),
                }
            )
        item["profile"] = cache[pid]


router = Router(path="/", route_handlers=[export_events])
