"""A project's API clients in the dashboard: list, create (the secret is shown once), revoke.

Routes: GET/POST /p/{project_id}/clients, POST /p/{project_id}/clients/{client_id}/revoke.
Members may look; only owners create or revoke. Any change resets ingest's auth cache at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from openpanel_lite.dashboard.forms import FormError, read_form
from openpanel_lite.dashboard.session import Viewer, dashboard_router, project_access, project_role
from openpanel_lite.meta import clients
from openpanel_lite.meta.clients import CLIENT_TYPES, Client, ClientType
from openpanel_lite.meta.errors import MetaError
from openpanel_lite.meta.projects import Project
from openpanel_lite.runtime import Runtime

TYPE_HELP: dict[ClientType, str] = {
    "write": "sends events (browser snippet, SDKs)",
    "read": "reads this project's data (export API)",
    "root": "reads every project's data",
}


class ClientForm(msgspec.Struct, kw_only=True):
    name: str = ""
    type: str = "write"


def _page(
    runtime: Runtime,
    viewer: Viewer,
    project: Project,
    *,
    owner: bool,
    created: tuple[Client, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Template:
    context = {
        "viewer": viewer,
        "project": project,
        "owner": owner,
        "clients": clients.list_clients(runtime.meta, project.id),
        "types": [(t, TYPE_HELP[t]) for t in CLIENT_TYPES],
        "created": created[0] if created else None,
        "secret": created[1] if created else None,
        "error": error,
    }
    # The page may hold a secret shown this once: keep it out of every cache.
    return Template(
        "projects/clients.html", context=context, status_code=status, headers={"Cache-Control": "no-store"}
    )


@get("/p/{project_id:str}/clients", sync_to_thread=False, include_in_schema=False)
def clients_page(
    runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer], project_id: FromPath[str]
) -> Template:
    project, role = project_role(runtime, viewer, project_id)
    return _page(runtime, viewer, project, owner=role == "owner")


@post("/p/{project_id:str}/clients", include_in_schema=False)
async def create_client(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
) -> Template:
    project = project_access(runtime, viewer, project_id, owner=True)
    try:
        form = await read_form(request, ClientForm)
        if form.type not in CLIENT_TYPES:
            raise FormError(f"client type must be one of {', '.join(CLIENT_TYPES)}")
        kind: ClientType = form.type  # checked just above
        # scrypt hashing of the new secret takes tens of ms: off the event loop.
        created = await asyncio.to_thread(
            clients.create_client, runtime.meta, project.id, type=kind, name=form.name.strip() or None
        )
    except (FormError, MetaError) as e:
        return _page(runtime, viewer, project, owner=True, error=str(e), status=400)
    runtime.ingest.auth.invalidate()
    return _page(runtime, viewer, project, owner=True, created=created, status=201)


@post("/p/{project_id:str}/clients/{client_id:str}/revoke", include_in_schema=False)
async def revoke_client(
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    client_id: FromPath[str],
) -> Redirect:
    project = project_access(runtime, viewer, project_id, owner=True)
    client = clients.get_client(runtime.meta, client_id)
    if client is None or client.project_id != project.id:
        raise NotFoundException("client not found")
    clients.revoke_client(runtime.meta, client.id)
    # Ingest caches clients and verified secrets; a revoked one must stop at the next request.
    runtime.ingest.auth.invalidate()
    return Redirect(f"/p/{project.id}/clients", status_code=303)


router = dashboard_router([clients_page, create_client, revoke_client])
