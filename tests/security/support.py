"""Shared pieces of the security suite (reliability.md §7, S01-S14): the XSS corpus, a project with
every kind of caller (owner, member, a member of another project, read and write clients), the app's
route table, and the headless-Chromium walk used by S01."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from openpanel_lite.app import create_app
from openpanel_lite.meta import clients, members, projects, users
from tests.dashboard_support import ADMIN_EMAIL, ADMIN_PASSWORD, Client, logged_in, login
from tests.harness import LiveServer
from tests.ingest_support import Site

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "data" / "xss_payloads.txt"
JS_NODE_MODULES = HERE.parent / "js" / "node_modules" / "playwright-core"
MEMBER_EMAIL = "member@example.com"
MEMBER_PASSWORD = "member long passphrase"
OUTSIDER_EMAIL = "outsider@example.com"
OUTSIDER_PASSWORD = "outsider long passphrase"

needs_browser = pytest.mark.skipif(
    not (Path("/usr/bin/chromium").exists() and shutil.which("node") and JS_NODE_MODULES.exists()),
    reason="needs /usr/bin/chromium, node and tests/js/node_modules (npm ci)",
)


def xss_payloads() -> list[str]:
    """The corpus, one payload a line (leading blanks and tabs are part of a payload)."""
    return [line for line in CORPUS.read_text(encoding="utf-8").split("\n") if line]


@dataclass
class World:
    """Project "acme" (owner: the admin, plus a member), project "other" with its own member, and a
    read and a write client of acme; every dashboard user is logged in."""

    server: LiveServer
    site: Site
    owner: Client
    member: Client
    outsider: Client  # member of the other project only
    read_id: str
    read_secret: str
    other_project: str

    @property
    def project_id(self) -> str:
        return self.site.project.id

    def client_headers(self, kind: str) -> dict[str, str]:
        if kind == "read":
            return {"openpanel-client-id": self.read_id, "openpanel-client-secret": self.read_secret}
        return {"openpanel-client-id": self.site.client_id, "openpanel-client-secret": self.site.secret}


def make_world(server: LiveServer) -> World:
    owner = logged_in(server)
    meta = server.runtime.meta
    site = Site(server)
    admin = users.get_user_by_email(meta, ADMIN_EMAIL)
    assert admin is not None
    members.add_member(meta, site.project.id, admin.id, role="owner")
    member = users.create_user(meta, MEMBER_EMAIL, MEMBER_PASSWORD, name="Member")
    members.add_member(meta, site.project.id, member.id, role="member")
    other = projects.create_project(meta, "Other", domain="other.example")
    outsider = users.create_user(meta, OUTSIDER_EMAIL, OUTSIDER_PASSWORD, name="Outsider")
    members.add_member(meta, other.id, outsider.id, role="owner")
    read, read_secret = clients.create_client(meta, site.project.id, type="read", name="Reader")
    return World(
        server=server,
        site=site,
        owner=owner,
        member=login(server, MEMBER_EMAIL, MEMBER_PASSWORD),
        outsider=login(server, OUTSIDER_EMAIL, OUTSIDER_PASSWORD),
        read_id=read.id,
        read_secret=read_secret,
        other_project=other.id,
    )


def route_table(server: LiveServer) -> Iterator[tuple[str, str, Any]]:
    """(method, path template, handler) of every route the app serves, as Litestar lists them."""
    app = create_app(server.cfg, runtime=server.runtime)
    for route in app.routes:
        for method, entry in getattr(route, "route_handler_map", {}).items():
            handler = entry[0] if isinstance(entry, tuple) else entry
            yield method, route.path, handler


def fill(path: str, values: dict[str, str]) -> str:
    """A concrete URL from a route template; unknown parameters become "x"."""
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "x"), path)


def browser_walk(tmp_path: Path, spec: dict[str, Any], timeout_s: float = 600) -> dict[str, Any]:
    """Run xss_walk.mjs with `spec` (see its header) and return its JSON result."""
    path = tmp_path / "xss_walk.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run(
        ["node", str(HERE / "xss_walk.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=HERE,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


__all__ = ["ADMIN_EMAIL", "ADMIN_PASSWORD", "World", "make_world", "route_table", "xss_payloads"]
