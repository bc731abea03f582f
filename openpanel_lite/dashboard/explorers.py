"""The explorers (openpanel-facts §5.4-§5.6): events, sessions and profiles, each a list and a detail page.

Routes (every one answers 404 to non-members, like all /p/... pages):
  GET /p/{id}/events            ?name=…&f=field,operator[,value]&key=&op=&value=&page=
  GET /p/{id}/events/{event_id}
  GET /p/{id}/sessions          ?page=
  GET /p/{id}/sessions/{sid}    (and /p/{id}/session?id= for ids that are no path segment)
  GET /p/{id}/profiles          ?tab=identified|anonymous|power-users&q=&page=
  GET /p/{id}/profiles/{pid}    (and /p/{id}/profile?id=)
  GET /p/{id}/profile/erase?id= (owners: the confirm step) → POST /p/{id}/profile/erase (GDPR erase)
The lists answer an htmx request (filter form, pager) with their results partial only; the URL keeps
the state, so a reload or a shared link shows the same page. Store reads run in worker threads.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template

from openpanel_lite.dashboard.explorer_links import Links, ListState
from openpanel_lite.dashboard.forms import FormError, read_form
from openpanel_lite.dashboard.session import Viewer, dashboard_router, is_htmx, project_access, project_role
from openpanel_lite.erase import erase_live
from openpanel_lite.meta.projects import Project
from openpanel_lite.query import FilterOperator, QueryError
from openpanel_lite.reports import events as event_reports
from openpanel_lite.reports import profiles as profile_reports
from openpanel_lite.reports import sessions as session_reports
from openpanel_lite.reports.params import to_params
from openpanel_lite.reports.service import Reports
from openpanel_lite.runtime import Runtime

OPERATORS = [op.value for op in FilterOperator]
TABS = [
    (profile_reports.Tab.IDENTIFIED, "Identified"),
    (profile_reports.Tab.ANONYMOUS, "Anonymous"),
    (profile_reports.Tab.POWER_USERS, "Power users"),
]
QueryId = Annotated[str, QueryParameter(name="id", max_length=1000)]


def _base(viewer: Viewer, project: Project) -> dict[str, Any]:
    return {"viewer": viewer, "project": project, "links": Links(project.id)}


def _page_or_partial(
    request: Request[Any, Any, Any],
    page: str,
    partial: str,
    context: dict[str, Any],
    status: int = 200,
    url: str | None = None,
) -> Template:
    """The results partial for htmx (the form and pager target it), the whole page otherwise.

    `url`, the canonical URL of the state shown, replaces the form's own query string in the address bar
    (HX-Push-Url), so what is bookmarked is the filters, not the last form submission.
    """
    headers = {"Cache-Control": "no-store"}
    if is_htmx(request) and request.headers.get("hx-boosted") != "true":
        if url is not None and status == 200:
            headers["HX-Push-Url"] = url
        return Template(partial, context=context, status_code=status, headers=headers)
    return Template(page, context=context, status_code=status, headers=headers)


# ------------------------------------------------------------------------------------------------
# events


@get("/p/{project_id:str}/events", include_in_schema=False)
async def events_list(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
) -> Template:
    project = project_access(runtime, viewer, project_id)
    context = _base(viewer, project) | {"operators": OPERATORS, "error": None}
    status = 200
    try:
        state = ListState.parse(request.url.path, to_params(request.query_params))
        page = await asyncio.to_thread(
            event_reports.event_page,
            runtime.store,
            project.id,
            project.timezone,
            names=state.names,
            filters=state.filters,
            page=state.page,
        )
    except QueryError as e:
        # A filter the store cannot run (unknown operator, a number filter on text …): say why.
        state = ListState(path=request.url.path)
        page = event_reports.EventPage(total=0, page=1, per_page=event_reports.PER_PAGE, items=[])
        context["error"], status = str(e), 400
    names = await asyncio.to_thread(
        event_reports.event_names, Reports.for_runtime(runtime).reader, project.id
    )
    context |= {"state": state, "page": page, "names": names}
    return _page_or_partial(
        request,
        "explorers/events.html",
        "explorers/_events_results.html",
        context,
        status,
        state.page_url(page.page),
    )


@get("/p/{project_id:str}/events/{event_id:str}", include_in_schema=False)
async def event_detail(
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    event_id: FromPath[str],
) -> Template:
    project = project_access(runtime, viewer, project_id)
    event = await asyncio.to_thread(
        event_reports.event_detail, runtime.store, project.id, event_id, project.timezone
    )
    if event is None:
        raise NotFoundException("event not found")
    return Template("explorers/event.html", context=_base(viewer, project) | {"event": event})


# ------------------------------------------------------------------------------------------------
# sessions


@get("/p/{project_id:str}/sessions", include_in_schema=False)
async def sessions_list(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    page: FromQuery[int] = 1,
) -> Template:
    project = project_access(runtime, viewer, project_id)
    found = await asyncio.to_thread(
        session_reports.session_page, runtime.store, project.id, project.timezone, page=page
    )
    links = Links(project.id)
    context = _base(viewer, project) | {
        "page": found,
        "page_url": lambda n: links.page("sessions", page=str(n) if n > 1 else ""),
    }
    return _page_or_partial(request, "explorers/sessions.html", "explorers/_sessions_results.html", context)


async def _session(runtime: Runtime, viewer: Viewer, project_id: str, session_id: str) -> Template:
    project = project_access(runtime, viewer, project_id)
    # '' is no session (server events without one carry it): not found, like any unknown id.
    detail = None
    if session_id:
        detail = await asyncio.to_thread(
            session_reports.session_detail, runtime.store, project.id, session_id, project.timezone
        )
    if detail is None:
        raise NotFoundException("session not found")
    return Template("explorers/session.html", context=_base(viewer, project) | {"detail": detail})


@get("/p/{project_id:str}/sessions/{session_id:str}", include_in_schema=False)
async def session_detail(
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    session_id: FromPath[str],
) -> Template:
    return await _session(runtime, viewer, project_id, session_id)


@get("/p/{project_id:str}/session", include_in_schema=False)
async def session_detail_by_query(
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    id_: QueryId = "",
) -> Template:
    return await _session(runtime, viewer, project_id, id_)


# ------------------------------------------------------------------------------------------------
# profiles


@get("/p/{project_id:str}/profiles", include_in_schema=False)
async def profiles_list(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    tab: FromQuery[str] = profile_reports.Tab.IDENTIFIED.value,
    q: Annotated[str, QueryParameter(max_length=200)] = "",
    page: FromQuery[int] = 1,
) -> Template:
    project = project_access(runtime, viewer, project_id)
    try:
        chosen = profile_reports.Tab(tab)
    except ValueError:
        chosen = profile_reports.Tab.IDENTIFIED
    found = await asyncio.to_thread(
        profile_reports.profile_page,
        runtime.store,
        project.id,
        project.timezone,
        tab=chosen,
        search=q,
        page=page,
    )
    links = Links(project.id)
    context = _base(viewer, project) | {
        "page": found,
        "tabs": TABS,
        "page_url": lambda n: links.page(
            "profiles", tab=chosen.value, q=found.search, page=str(n) if n > 1 else ""
        ),
    }
    return _page_or_partial(request, "explorers/profiles.html", "explorers/_profiles_results.html", context)


async def _profile_detail(runtime: Runtime, project: Project, profile_id: str) -> Any:
    # '' is no profile (server events without one carry it): not found, like any unknown id.
    detail = None
    if profile_id:
        detail = await asyncio.to_thread(
            profile_reports.profile_detail, runtime.store, project.id, profile_id, project.timezone
        )
    if detail is None:
        raise NotFoundException("profile not found")
    return detail


async def _profile(runtime: Runtime, viewer: Viewer, project_id: str, profile_id: str) -> Template:
    project, role = project_role(runtime, viewer, project_id)
    detail = await _profile_detail(runtime, project, profile_id)
    context = _base(viewer, project) | {"detail": detail, "can_erase": role == "owner"}
    return Template("explorers/profile.html", context=context)


@get("/p/{project_id:str}/profiles/{profile_id:str}", include_in_schema=False)
async def profile_detail(
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    profile_id: FromPath[str],
) -> Template:
    return await _profile(runtime, viewer, project_id, profile_id)


@get("/p/{project_id:str}/profile", include_in_schema=False)
async def profile_detail_by_query(
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    id_: QueryId = "",
) -> Template:
    return await _profile(runtime, viewer, project_id, id_)


# ------------------------------------------------------------------------------------------------
# GDPR erase (reliability §5, S15): owners only, a confirm page, then a CSRF-checked POST


class EraseForm(msgspec.Struct, kw_only=True):
    id: str = ""
    confirm: str = ""


@get("/p/{project_id:str}/profile/erase", include_in_schema=False)
async def profile_erase_confirm(
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    id_: QueryId = "",
) -> Template:
    project = project_access(runtime, viewer, project_id, owner=True)
    detail = await _profile_detail(runtime, project, id_)
    context = _base(viewer, project) | {"detail": detail, "result": None}
    return Template("explorers/profile_erase.html", context=context, headers={"Cache-Control": "no-store"})


@post("/p/{project_id:str}/profile/erase", include_in_schema=False, status_code=200)
async def profile_erase(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
) -> Template:
    # `viewer` already checked the CSRF token (every non-GET dashboard request).
    project = project_access(runtime, viewer, project_id, owner=True)
    try:
        form = await read_form(request, EraseForm)
    except FormError as e:
        raise ValidationException(str(e)) from None
    if not form.id or form.confirm != "erase":
        raise ValidationException("the erase was not confirmed")
    result = await erase_live(runtime.ingest, project.id, form.id)
    context = _base(viewer, project) | {"detail": None, "result": result}
    return Template("explorers/profile_erase.html", context=context, headers={"Cache-Control": "no-store"})


router = dashboard_router(
    [
        events_list,
        event_detail,
        sessions_list,
        session_detail,
        session_detail_by_query,
        profiles_list,
        profile_detail,
        profile_detail_by_query,
        profile_erase_confirm,
        profile_erase,
    ]
)
