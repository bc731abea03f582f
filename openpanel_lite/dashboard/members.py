"""A project's members in the dashboard: list, add (an existing user, or a new one with a temporary
password shown once), change nothing else, remove.

Routes: GET/POST /p/{project_id}/members, POST /p/{project_id}/members/{user_id}/remove.
Members may look; only owners add or remove. The last owner cannot be removed (meta refuses).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from openpanel_lite.dashboard.forms import FormError, read_form
from openpanel_lite.dashboard.session import Viewer, dashboard_router, project_access, project_role
from openpanel_lite.meta import members, users
from openpanel_lite.meta.errors import MetaError
from openpanel_lite.meta.members import ROLES, Role
from openpanel_lite.meta.projects import Project
from openpanel_lite.runtime import Runtime


class MemberForm(msgspec.Struct, kw_only=True):
    email: str = ""
    name: str = ""
    role: str = "member"


class Added(msgspec.Struct, frozen=True):
    email: str
    temporary_password: str | None  # set only when the account was created just now


def _page(
    runtime: Runtime,
    viewer: Viewer,
    project: Project,
    *,
    owner: bool,
    added: Added | None = None,
    error: str | None = None,
    status: int = 200,
) -> Template:
    context = {
        "viewer": viewer,
        "project": project,
        "owner": owner,
        "members": members.list_members(runtime.meta, project.id),
        "roles": ROLES,
        "added": added,
        "error": error,
    }
    return Template(
        "projects/members.html", context=context, status_code=status, headers={"Cache-Control": "no-store"}
    )


@get("/p/{project_id:str}/members", sync_to_thread=False, include_in_schema=False)
def members_page(
    runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer], project_id: FromPath[str]
) -> Template:
    project, role = project_role(runtime, viewer, project_id)
    return _page(runtime, viewer, project, owner=role == "owner")


def _add(runtime: Runtime, project: Project, form: MemberForm, role: Role) -> Added:
    """Add the user with this email, creating the account (random temporary password) when none exists."""
    meta = runtime.meta
    with meta.transaction():
        user = users.get_user_by_email(meta, form.email)
        password = None
        if user is None:
            password = secrets.token_urlsafe(12)  # 16 characters, 96 bits
            user = users.create_user(meta, form.email, password, name=form.name.strip() or None)
        members.add_member(meta, project.id, user.id, role=role)
    return Added(email=user.email, temporary_password=password)


@post("/p/{project_id:str}/members", include_in_schema=False)
async def add_member(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
) -> Template:
    project = project_access(runtime, viewer, project_id, owner=True)
    try:
        form = await read_form(request, MemberForm)
        if form.role not in ROLES:
            raise FormError(f"role must be one of {', '.join(ROLES)}")
        role: Role = form.role  # checked just above
        added = await asyncio.to_thread(_add, runtime, project, form, role)
    except (FormError, MetaError) as e:
        return _page(runtime, viewer, project, owner=True, error=str(e), status=400)
    return _page(runtime, viewer, project, owner=True, added=added, status=201)


@post("/p/{project_id:str}/members/{user_id:str}/remove", include_in_schema=False)
async def remove_member(
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    user_id: FromPath[str],
) -> Template | Redirect:
    project = project_access(runtime, viewer, project_id, owner=True)
    try:
        members.remove_member(runtime.meta, project.id, user_id)
    except MetaError as e:
        return _page(runtime, viewer, project, owner=True, error=str(e), status=400)
    if user_id == viewer.user.id:
        return Redirect("/projects", status_code=303)
    return Redirect(f"/p/{project.id}/members", status_code=303)


router = dashboard_router([members_page, add_member, remove_member])
