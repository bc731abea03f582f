"""Projects in the dashboard: the list (with 30-day sparklines), create/edit, and the tracking setup page.

Routes: GET /projects, GET /projects/new, POST /projects, GET/POST /p/{project_id}/settings,
GET /p/{project_id}/setup and its polled partial GET /p/{project_id}/setup/status.
Clients and members are in dashboard/clients.py and dashboard/members.py. Every /p/... route
answers 404 to non-members; changes need the owner role.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from openpanel_lite.dashboard.forms import FormError, lines, read_form
from openpanel_lite.dashboard.session import Viewer, dashboard_router, project_access, project_role
from openpanel_lite.meta import clients, projects
from openpanel_lite.meta.errors import MetaError
from openpanel_lite.meta.project_filters import EventFilter, IpFilter, ProfileIdFilter, ProjectFilter
from openpanel_lite.meta.projects import Project
from openpanel_lite.reports.project_activity import daily_sessions, has_events
from openpanel_lite.runtime import Runtime
from openpanel_lite.snippet import tracking_snippet

SPARK_DAYS = 30
SPARK_WIDTH = 120
SPARK_HEIGHT = 28


class ProjectForm(msgspec.Struct, kw_only=True):
    name: str = ""
    domain: str = ""
    timezone: str = "UTC"
    cors: str = ""  # one origin per line
    excluded_ips: str = ""  # one IP or CIDR per line
    excluded_profile_ids: str = ""
    allow_unsafe_revenue: str = ""  # checkbox: "on" when ticked

    @classmethod
    def of(cls, project: Project) -> ProjectForm:
        return cls(
            name=project.name,
            domain=project.domain or "",
            timezone=project.timezone,
            cors="\n".join(project.cors),
            excluded_ips="\n".join(f.ip for f in project.filters if isinstance(f, IpFilter)),
            excluded_profile_ids="\n".join(
                f.profile_id for f in project.filters if isinstance(f, ProfileIdFilter)
            ),
            allow_unsafe_revenue="on" if project.allow_unsafe_revenue_tracking else "",
        )

    def filters(self, keep: tuple[ProjectFilter, ...]) -> list[ProjectFilter]:
        """IP and profile filters from the form; event filters (not edited here) are kept as they were."""
        kept: list[ProjectFilter] = [f for f in keep if isinstance(f, EventFilter)]
        ips: list[ProjectFilter] = [IpFilter(ip=ip) for ip in lines(self.excluded_ips)]
        profiles: list[ProjectFilter] = [
            ProfileIdFilter(profile_id=p) for p in lines(self.excluded_profile_ids)
        ]
        return ips + profiles + kept


class Sparkline(msgspec.Struct, frozen=True):
    """An SVG polyline of daily sessions; `points` holds numbers only."""

    points: str
    total: int
    width: int = SPARK_WIDTH
    height: int = SPARK_HEIGHT


class ProjectRow(msgspec.Struct, frozen=True):
    project: Project
    role: str
    spark: Sparkline


def sparkline(values: list[int], width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT) -> Sparkline:
    """Scale to the box with 2 px of padding; all zeros (an empty project) is a flat line at the bottom."""
    top, bottom = 2.0, height - 2.0
    peak = max(values, default=0)
    step = width / (len(values) - 1) if len(values) > 1 else 0.0
    points = []
    for i, value in enumerate(values):
        y = bottom - (value / peak) * (bottom - top) if peak > 0 else bottom
        points.append(f"{i * step:.1f},{y:.1f}")
    return Sparkline(" ".join(points), sum(values), width, height)


@functools.cache
def timezone_names() -> list[str]:
    # Same exclusions as meta.validation: files some systems ship that are not portable zone names.
    return sorted(available_timezones() - {"localtime", "posixrules", "Factory"} | {"UTC"})


class _Caches:
    """Per-runtime memo: sparklines keyed by the writer's data version, and projects known to have data."""

    def __init__(self) -> None:
        self.sparks: dict[str, tuple[tuple[int, str, str], Sparkline]] = {}
        self.has_data: set[str] = set()


_caches: weakref.WeakKeyDictionary[Runtime, _Caches] = weakref.WeakKeyDictionary()


def _cache(runtime: Runtime) -> _Caches:
    found = _caches.get(runtime)
    if found is None:
        found = _caches[runtime] = _Caches()
    return found


def project_sparkline(runtime: Runtime, project: Project) -> Sparkline:
    """Daily sessions of the last 30 local days; recomputed only after a store write or at midnight."""
    today = datetime.now(ZoneInfo(project.timezone)).date()
    key = (runtime.ingest.writer.data_version(project.id), today.isoformat(), project.timezone)
    cache = _cache(runtime).sparks
    hit = cache.get(project.id)
    if hit is not None and hit[0] == key:
        return hit[1]
    values = daily_sessions(runtime.store, project.id, project.timezone, last_day=today, days=SPARK_DAYS)
    spark = sparkline(values)
    cache[project.id] = (key, spark)
    return spark


def first_event_seen(runtime: Runtime, project_id: str) -> bool:
    """True once any event of the project is in the store; remembered, since it never turns false."""
    known = _cache(runtime).has_data
    if project_id in known:
        return True
    if has_events(runtime.store, project_id):
        known.add(project_id)
        return True
    return False


# ------------------------------------------------------------------------------------------------
# list and create


def _rows(runtime: Runtime, viewer: Viewer) -> list[ProjectRow]:
    rows = []
    for project in projects.list_projects(runtime.meta, user_id=viewer.user.id):
        _project, role = project_role(runtime, viewer, project.id)
        rows.append(ProjectRow(project, role, project_sparkline(runtime, project)))
    return rows


@get("/projects", include_in_schema=False)
async def project_list(runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer]) -> Template:
    rows = await asyncio.to_thread(_rows, runtime, viewer)
    return Template("projects/list.html", context={"viewer": viewer, "rows": rows})


def _form_page(
    viewer: Viewer, form: ProjectForm, *, project: Project | None, error: str | None, status: int = 200
) -> Template:
    template = "projects/new.html" if project is None else "projects/settings.html"
    context = {
        "viewer": viewer,
        "project": project,
        "form": form,
        "error": error,
        "timezones": timezone_names(),
        "saved": False,
    }
    return Template(template, context=context, status_code=status)


@get("/projects/new", sync_to_thread=False, include_in_schema=False)
def new_project_page(viewer: NamedDependency[Viewer]) -> Template:
    return _form_page(viewer, ProjectForm(), project=None, error=None)


def _create(runtime: Runtime, viewer: Viewer, form: ProjectForm) -> Project:
    # One transaction: a bad filter must not leave a half-made project behind.
    with runtime.meta.transaction():
        project = projects.create_project(
            runtime.meta,
            form.name,
            domain=form.domain or None,
            # No origins given: the site's own domain, so its browsers are accepted (as upstream does).
            cors=lines(form.cors) or ([form.domain] if form.domain.strip() else []),
            timezone=form.timezone,
            owner_user_id=viewer.user.id,
        )
        project = projects.update_project(
            runtime.meta,
            project.id,
            filters=form.filters(()),
            allow_unsafe_revenue_tracking=form.allow_unsafe_revenue == "on",
        )
        # A write client, so the setup page has a snippet at once (browsers need no secret).
        clients.create_client(runtime.meta, project.id, type="write")
    return project


@post("/projects", include_in_schema=False)
async def create_project(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer]
) -> Template | Redirect:
    try:
        form = await read_form(request, ProjectForm)
    except FormError as e:
        return _form_page(viewer, ProjectForm(), project=None, error=str(e), status=400)
    try:
        project = await asyncio.to_thread(_create, runtime, viewer, form)
    except MetaError as e:
        return _form_page(viewer, form, project=None, error=str(e), status=400)
    runtime.ingest.auth.invalidate()
    return Redirect(f"/p/{project.id}/setup", status_code=303)


# ------------------------------------------------------------------------------------------------
# settings


def _settings_page(
    viewer: Viewer,
    form: ProjectForm,
    project: Project,
    *,
    owner: bool,
    error: str | None = None,
    saved: bool = False,
    status: int = 200,
) -> Template:
    page = _form_page(viewer, form, project=project, error=error, status=status)
    page.context.update(owner=owner, saved=saved)
    return page


@get("/p/{project_id:str}/settings", sync_to_thread=False, include_in_schema=False)
def settings_page(
    runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer], project_id: FromPath[str]
) -> Template:
    project, role = project_role(runtime, viewer, project_id)
    return _settings_page(viewer, ProjectForm.of(project), project, owner=role == "owner")


def _update(runtime: Runtime, project: Project, form: ProjectForm) -> Project:
    return projects.update_project(
        runtime.meta,
        project.id,
        name=form.name,
        domain=form.domain or None,
        cors=lines(form.cors),
        timezone=form.timezone,
        filters=form.filters(project.filters),
        allow_unsafe_revenue_tracking=form.allow_unsafe_revenue == "on",
    )


@post("/p/{project_id:str}/settings", include_in_schema=False)
async def save_settings(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
) -> Template:
    project = project_access(runtime, viewer, project_id, owner=True)
    try:
        form = await read_form(request, ProjectForm)
    except FormError as e:
        return _settings_page(viewer, ProjectForm.of(project), project, owner=True, error=str(e), status=400)
    try:
        updated = await asyncio.to_thread(_update, runtime, project, form)
    except MetaError as e:
        return _settings_page(viewer, form, project, owner=True, error=str(e), status=400)
    # CORS lists and filters are cached by ingest: the change must apply to the next /track.
    runtime.ingest.auth.invalidate()
    return _settings_page(viewer, ProjectForm.of(updated), updated, owner=True, saved=True)


# ------------------------------------------------------------------------------------------------
# tracking setup


@get("/p/{project_id:str}/setup", include_in_schema=False)
async def setup_page(
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    client: FromQuery[str] = "",
) -> Template:
    project, role = project_role(runtime, viewer, project_id)
    active = [c for c in clients.list_clients(runtime.meta, project.id, include_revoked=False)]
    chosen = next((c for c in active if c.id == client), None)
    chosen = chosen or next((c for c in active if c.type == "write"), None)
    seen = await asyncio.to_thread(first_event_seen, runtime, project.id)
    context = {
        "viewer": viewer,
        "project": project,
        "owner": role == "owner",
        "client": chosen,
        "clients": active,
        "snippet": tracking_snippet(runtime.cfg.base_url, chosen.id) if chosen else None,
        "base_url": runtime.cfg.base_url,
        "seen": seen,
    }
    return Template("projects/setup.html", context=context)


@get("/p/{project_id:str}/setup/status", include_in_schema=False)
async def setup_status(
    runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer], project_id: FromPath[str]
) -> Template:
    project = project_access(runtime, viewer, project_id)
    seen = await asyncio.to_thread(first_event_seen, runtime, project.id)
    context = {"project": project, "seen": seen}
    return Template("projects/_setup_status.html", context=context, headers={"Cache-Control": "no-store"})


router = dashboard_router(
    [project_list, new_project_page, create_project, settings_page, save_settings, setup_page, setup_status]
)
