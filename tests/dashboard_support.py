"""Dashboard test helpers: a cookie-keeping HTTP client that does not follow redirects, and log-in helpers.

``logged_in(server)`` runs onboarding (admin@example.com) and returns a Client with ``csrf`` set;
``client.get(path)`` sends the cookies and follows nothing; ``client.post(path, form)`` adds the
csrf_token field unless ``csrf=False`` (to prove a route refuses it).
"""

from __future__ import annotations

import http.client
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

from tests.harness import LiveServer

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    set_cookies: list[str]  # each Set-Cookie header as sent
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    def csrf_field(self) -> str:
        """The csrf_token hidden field of the page's (first) form."""
        match = _CSRF_FIELD.search(self.text)
        assert match, f"no csrf_token field in {self.text[:300]!r}"
        return match.group(1)


@dataclass
class Client:
    server: LiveServer
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.cfg.server.port, timeout=30)
        try:
            all_headers = dict(headers or {})
            if self.cookies and "Cookie" not in all_headers:
                all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            raw = resp.read()
            set_cookies = resp.msg.get_all("Set-Cookie") or []
            merged: dict[str, str] = {}
            for k, v in resp.getheaders():
                key = k.lower()
                merged[key] = f"{merged[key]}, {v}" if key in merged else v
        finally:
            conn.close()
        for line in set_cookies:
            for name, morsel in SimpleCookie(line).items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return Reply(resp.status, merged, set_cookies, raw)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(
        self,
        path: str,
        form: Mapping[str, str] | None = None,
        *,
        csrf: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        fields = dict(form or {})
        if csrf:
            fields.setdefault("csrf_token", self.csrf)
        body = urllib.parse.urlencode(fields).encode()
        return self.request(
            "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        )

    def refresh_csrf(self, path: str = "/projects/new") -> str:
        """Read the session's CSRF token from a logged-in page."""
        page = self.get(path)
        assert page.status == 200, (page.status, page.text[:300])
        self.csrf = page.csrf_field()
        return self.csrf


def logged_in(server: LiveServer, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> Client:
    """The first user, created through the onboarding page, logged in; ``client.csrf`` is set."""
    client = Client(server)
    page = client.get("/onboarding")
    assert page.status == 200, (page.status, page.headers)
    client.csrf = page.csrf_field()
    reply = client.post(
        "/onboarding", {"email": email, "name": "Admin", "password": password, "password_confirm": password}
    )
    assert reply.status == 303, (reply.status, reply.text[:500])
    client.refresh_csrf()
    return client


def login(server: LiveServer, email: str, password: str) -> Client:
    """An existing user logged in through the login page; ``client.csrf`` is set."""
    client = Client(server)
    page = client.get("/login")
    assert page.status == 200, (page.status, page.headers)
    client.csrf = page.csrf_field()
    reply = client.post("/login", {"email": email, "password": password})
    assert reply.status == 303, (reply.status, reply.text[:500])
    client.refresh_csrf()
    return client
