"""The overview widgets' JSON twins: GET /api/p/{project_id}/cards, /series, /top/{dimension}, /live.

They take the dashboard page's own query string (range, interval, start, end, f=field,operator,value
repeated, or filters=<upstream JSON>) and return the report Structs the page renders.

Auth, either: a dashboard login session (cookie) of a member of the project, or the headers
openpanel-client-id + openpanel-client-secret of a read client of the project or a root client.
Errors: {"status", "error", "message", "param"}; 400 names the bad parameter in `param`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter

from openpanel_lite.api.export import ApiError, authorize_reader
from openpanel_lite.dashboard.session import current_session
from openpanel_lite.meta import members, projects, users
from openpanel_lite.meta.projects import Project
from openpanel_lite.query import ParamError, QueryError
from openpanel_lite.reports.live import Live
from openpanel_lite.reports.overview import Cards, OverviewQuery, Series
from openpanel_lite.reports.params import parse_int, parse_metric, parse_overview
from openpanel_lite.reports.service import Reports
from openpanel_lite.reports.top import DEFAULT_LIMIT, MAX_LIMIT, TopTable
from openpanel_lite.runtime import Runtime


class ErrorBody(msgspec.Struct, frozen=True):
    status: int
    error: str
    message: str
    param: str | None = None


_ERRORS = {
    400: ResponseSpec(ErrorBody, description="A bad parameter, named in `param`"),
    401: ResponseSpec(ErrorBody, description="No login session and no valid client credentials"),
    403: ResponseSpec(ErrorBody, description="A read client of another project"),
    404: ResponseSpec(ErrorBody, description="No such project, or not a member of it"),
}


def _doc(description: str, name: str | None = None) -> Any:
    return QueryParameter(description=description, name=name)


ProjectParam = Annotated[str, PathParameter(description="the project's id")]
DimensionParam = Annotated[
    str, PathParameter(description="a dimension, pages, events, link_out, properties.<key>")
]
# The dashboard URL's parameters, declared so that they are listed in the OpenAPI schema.
RangeParam = Annotated[
    str | None, _doc("30min, lastHour, last24h, today, yesterday, 7d, 30d (default) …", "range")
]
IntervalParam = Annotated[str | None, _doc("minute, hour, day, week or month; default by range")]
StartParam = Annotated[str | None, _doc("custom range start: YYYY-MM-DD or ISO datetime")]
EndParam = Annotated[str | None, _doc("custom range end (a date is inclusive)")]
FParam = Annotated[list[str] | None, _doc("a filter: field,operator[,value]; repeatable")]
FiltersParam = Annotated[str | None, _doc('JSON: [{"name": "country", "operator": "is", "value": ["SE"]}]')]
LimitParam = Annotated[str | None, _doc(f"rows, 1..{MAX_LIMIT} ({DEFAULT_LIMIT})")]
OffsetParam = Annotated[str | None, _doc("rows to skip (0)")]
MetricParam = Annotated[str | None, _doc("a card metric, e.g. unique_visitors")]


def _error(status: int, message: str, param: str | None = None) -> Response[ErrorBody]:
    names = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    body = ErrorBody(status, names.get(status, "Error"), message, param)
    return Response(body, status_code=status)


def _on_query_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    param = exc.param if isinstance(exc, ParamError) else None
    return _error(400, str(exc), param)


def _on_api_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _project(request: Request[Any, Any, Any], runtime: Runtime, project_id: str) -> Project:
    """The project if the caller may read it; ApiError otherwise (see the module docstring)."""
    auth = runtime.ingest.auth
    if request.headers.get("openpanel-client-id"):
        client_id, client_type = await authorize_reader(request, auth, "Query")
        own = auth.client(client_id)
        if client_type == "read" and (own is None or own.project_id != project_id):
            raise ApiError(403, "Forbidden", "You do not have access to this project")
        project = await asyncio.to_thread(projects.get_project, runtime.meta, project_id)
    else:
        project = await asyncio.to_thread(_member_project, runtime, request, project_id)
    if project is None:
        raise ApiError(404, "Not Found", "Project not found")
    return project


def _member_project(runtime: Runtime, request: Request[Any, Any, Any], project_id: str) -> Project | None:
    session = current_session(runtime, request)
    user = users.get_user(runtime.meta, session.user_id) if session is not None else None
    if user is None:
        raise ApiError(401, "Unauthorized", "Log in, or send openpanel-client-id and openpanel-client-secret")
    # Not a member looks the same as no such project, as on the dashboard.
    if members.get_role(runtime.meta, project_id, user.id) is None:
        return None
    return projects.get_project(runtime.meta, project_id)


def _query(
    project: Project,
    range_: str | None,
    interval: str | None,
    start: str | None,
    end: str | None,
    f: list[str] | None,
    filters: str | None,
) -> OverviewQuery:
    given = {"range": range_, "interval": interval, "start": start, "end": end, "filters": filters}
    params = {name: [value] for name, value in given.items() if value}
    params["f"] = f or []
    return parse_overview(params, project.timezone, datetime.now(UTC))


@get("/cards", summary="Overview metric cards: value, previous period, change", responses=_ERRORS)
async def cards(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    project_id: ProjectParam,
    range_: RangeParam = None,
    interval: IntervalParam = None,
    start: StartParam = None,
    end: EndParam = None,
    f: FParam = None,
    filters: FiltersParam = None,
) -> Cards:
    project = await _project(request, runtime, project_id)
    q = _query(project, range_, interval, start, end, f, filters)
    return await asyncio.to_thread(Reports.for_runtime(runtime).cards, project.id, q)


@get("/series", summary="One overview metric per time bucket, current and previous period", responses=_ERRORS)
async def series(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    project_id: ProjectParam,
    metric: MetricParam = None,
    range_: RangeParam = None,
    interval: IntervalParam = None,
    start: StartParam = None,
    end: EndParam = None,
    f: FParam = None,
    filters: FiltersParam = None,
) -> Series:
    project = await _project(request, runtime, project_id)
    chosen = parse_metric(metric)
    q = _query(project, range_, interval, start, end, f, filters)
    return await asyncio.to_thread(Reports.for_runtime(runtime).series, project.id, q, chosen)


@get("/top/{dimension:str}", summary="A top-N table: a dimension, pages, events, link_out", responses=_ERRORS)
async def top(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    project_id: ProjectParam,
    dimension: Annotated[
        str, PathParameter(description="a dimension, pages, events, link_out, properties.<key>")
    ],
    limit: Annotated[
        str | None, QueryParameter(description=f"rows, 1..{MAX_LIMIT} ({DEFAULT_LIMIT})")
    ] = None,
    offset: Annotated[str | None, QueryParameter(description="rows to skip (0)")] = None,
    range_: RangeParam = None,
    interval: IntervalParam = None,
    start: StartParam = None,
    end: EndParam = None,
    f: FParam = None,
    filters: FiltersParam = None,
) -> TopTable:
    project = await _project(request, runtime, project_id)
    rows = parse_int(limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    skip = parse_int(offset, "offset", 0, 0, 10**9)
    q = _query(project, range_, interval, start, end, f, filters)
    reports = Reports.for_runtime(runtime)
    try:
        return await asyncio.to_thread(reports.top, project.id, q, dimension, rows, skip)
    except ParamError:
        raise
    except QueryError as e:
        raise ParamError("dimension", str(e)) from None


@get("/live", summary="Visitors with an event in the last 5 minutes", responses=_ERRORS)
async def live(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime], project_id: ProjectParam
) -> Live:
    project = await _project(request, runtime, project_id)
    return await asyncio.to_thread(Reports.for_runtime(runtime).live_visitors, project.id)


router = Router(
    path="/api/p/{project_id:str}",
    route_handlers=[cards, series, top, live],
    exception_handlers={QueryError: _on_query_error, ApiError: _on_api_error},
    tags=["overview"],
)
