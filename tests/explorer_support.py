"""Helpers for the realtime and explorer tests: a small event set sent through real /track, an HTML
table reader, a member/non-member pair of logged-in clients, and a logged-in Chromium walk.

The event set (UTC; `base` = ten minutes ago, to the second; __timestamp keeps events within 15 min
in their sessions, so every time below is exact):
  A (anonymous, Chrome on Windows, London)
    base+0s   screen_view /pricing  (from google)      + session_start at base-100ms
    base+30s  screen_view /docs
    base+45s  signup {plan: pro, seats: 3} on /docs    session: 45 s, 2 views, 1 event, not a bounce
  B (identified as user-1 "Ada Lovelace", Safari on macOS, Hanover)
    identify user-1 {tier: gold}
    base+60s  screen_view /home                        + session_start at base+59.9s
    base+75s  add_to_cart {sku: A1}
    base+90s  purchase {sku: A1}
    base+95s  revenue 1999                             session: 35 s, 1 view, 3 events, bounce, 19.99
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from openpanel_lite.meta import members, users
from tests.dashboard_support import ADMIN_EMAIL, ADMIN_PASSWORD, Client, logged_in, login
from tests.harness import LiveServer
from tests.ingest_support import HANOVER_IP, Site

JS_DIR = Path(__file__).parent / "js"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15"
)
SITE = "https://example.com"
OUTSIDER_EMAIL = "outsider@example.com"
OUTSIDER_PASSWORD = "another long passphrase"
# Payloads that set window.__xss if they ever run; the Chromium tests check that it stays unset.
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_ATTR = '"><svg onload=window.__xss=1>'
# Event names refuse "<script" and "onerror=" (ingest/blocklist.py); these two pass and would still run.
XSS_NAME = '"><svg onload=window.__xss=1>'
XSS_NAME_IMG = "<img src=/static/favicon.svg onload=window.__xss=1>"

needs_browser = pytest.mark.skipif(
    not (
        Path("/usr/bin/chromium").exists()
        and shutil.which("node")
        and (JS_DIR / "node_modules/playwright-core").exists()
    ),
    reason="needs /usr/bin/chromium, node and tests/js/node_modules (npm ci)",
)


@dataclass
class Seeded:
    site: Site
    base: datetime  # aware UTC, whole seconds
    device_a: str  # visitor A's device id (= its anonymous profile id)
    session_a: str
    session_b: str

    def at(self, seconds: float) -> datetime:
        return self.base + timedelta(seconds=seconds)


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def track(
    site: Site, name: str, props: dict[str, Any], *, profile_id: str | None = None, **headers: str
) -> Any:
    payload: dict[str, Any] = {"name": name, "properties": props}
    if profile_id is not None:
        payload["profileId"] = profile_id
    reply = site.track({"type": "track", "payload": payload}, **headers)
    assert reply.status == 200, (reply.status, reply.text)
    return reply.json()


def seed(site: Site) -> Seeded:
    """The event set of the module docstring, written to the store."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    def at(seconds: int) -> str:
        return stamp(base + timedelta(seconds=seconds))

    first = track(
        site,
        "screen_view",
        {"__timestamp": at(0), "__path": SITE + "/pricing", "__referrer": "https://www.google.com/"},
    )
    track(site, "screen_view", {"__timestamp": at(30), "__path": SITE + "/docs"})
    track(site, "signup", {"__timestamp": at(45), "__path": SITE + "/docs", "plan": "pro", "seats": "3"})
    b = {"User-Agent": SAFARI_MAC, "X-Forwarded-For": HANOVER_IP}
    identify = {
        "profileId": "user-1",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@example.com",
        "properties": {"tier": "gold"},
    }
    assert site.track({"type": "identify", "payload": identify}, **b).status == 200
    second = track(
        site, "screen_view", {"__timestamp": at(60), "__path": SITE + "/home"}, profile_id="user-1", **b
    )
    track(site, "add_to_cart", {"__timestamp": at(75), "sku": "A1"}, profile_id="user-1", **b)
    track(site, "purchase", {"__timestamp": at(90), "sku": "A1"}, profile_id="user-1", **b)
    track(site, "revenue", {"__timestamp": at(95), "__revenue": 1999}, profile_id="user-1", **b)
    site.server.flush()
    return Seeded(site, base, first["deviceId"], first["sessionId"], second["sessionId"])


def member(server: LiveServer, site: Site, client: Client) -> Client:
    """Make the admin (already logged in as `client`) an owner of the site's project."""
    found = users.get_user_by_email(server.runtime.meta, ADMIN_EMAIL)
    assert found is not None
    members.add_member(server.runtime.meta, site.project.id, found.id, role="owner")
    return client


def admin(server: LiveServer) -> Client:
    """The admin, through onboarding (once per server) or the login page."""
    if users.get_user_by_email(server.runtime.meta, ADMIN_EMAIL) is None:
        return logged_in(server)
    return login(server, ADMIN_EMAIL, ADMIN_PASSWORD)


def outsider(server: LiveServer) -> Client:
    """A logged-in user who is a member of no project."""
    if users.get_user_by_email(server.runtime.meta, OUTSIDER_EMAIL) is None:
        users.create_user(server.runtime.meta, OUTSIDER_EMAIL, OUTSIDER_PASSWORD, name="Outsider")
    return login(server, OUTSIDER_EMAIL, OUTSIDER_PASSWORD)


# ------------------------------------------------------------------------------------------------
# reading pages


class _Tables(HTMLParser):
    """Text of every cell of the <table> with a given id (or class), row by row."""

    def __init__(self, table_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.table_id = table_id
        self.depth = 0  # >0 while inside the wanted table
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            if self.depth:
                self.depth += 1
            elif found.get("id") == self.table_id or self.table_id in (found.get("class") or "").split():
                self.depth = 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self._cell = []
        elif self.depth and tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table(html: str, table_id: str) -> list[list[str]]:
    """The rows (header row first) of the table whose id or class is `table_id`."""
    parser = _Tables(table_id)
    parser.feed(html)
    return parser.rows


class _Text(HTMLParser):
    """The text inside the element with a given id (tags dropped, whitespace collapsed)."""

    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.element_id = element_id
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            if tag not in ("br", "img", "input", "meta", "link", "hr", "wbr", "source"):
                self.depth += 1
            self.parts.append(" ")
        elif dict(attrs).get("id") == self.element_id:
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def text_of(html: str, element_id: str) -> str:
    parser = _Text(element_id)
    parser.feed(html)
    return " ".join("".join(parser.parts).split())


# ------------------------------------------------------------------------------------------------
# Chromium


def login_steps() -> list[dict[str, Any]]:
    return [
        {"goto": "/login"},
        {"fill": "input[name=email]", "value": ADMIN_EMAIL},
        {"fill": "input[name=password]", "value": ADMIN_PASSWORD},
        {"submit": "button[type=submit]"},
    ]


def flow_command(server: LiveServer, steps: list[dict[str, Any]], tmp: Path) -> list[str]:
    """The node command that logs the admin in and walks `steps` (tests/js/dashboard_flow.mjs)."""
    spec = tmp / f"flow-{len(list(tmp.glob('flow-*')))}.json"
    spec.write_text(
        json.dumps(
            {"origin": server.base, "userAgent": "openpanel-lite tests", "steps": login_steps() + steps}
        ),
        encoding="utf-8",
    )
    return ["node", str(JS_DIR / "dashboard_flow.mjs"), str(spec)]


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def browse(server: LiveServer, steps: list[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    proc = subprocess.Popen(
        flow_command(server, steps, tmp),
        cwd=JS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    return finish(proc)


# Counted in the page after it settled: a payload that ran would have set window.__xss or added
# an element or attribute that a parser only creates from markup.
PAGE_CHECKS = r"""(() => ({
  xss: window.__xss === undefined ? null : window.__xss,
  scripts: [...document.scripts].map((s) => s.getAttribute('src')),
  injected: document.querySelectorAll('main img, main svg [onload], main script, main iframe').length,
  handlers: [...document.querySelectorAll('main *')].filter(
    (el) => [...el.attributes].some((a) => a.name.startsWith('on'))).length,
  jsHrefs: [...document.querySelectorAll('a[href]')].filter(
    (a) => /^\s*(javascript|data|vbscript):/i.test(a.getAttribute('href'))).length,
}))()"""
