"""Dashboard authentication: login sessions, CSRF protection and project access.

How other dashboard modules use it (pages live at ``/p/{project_id}/...``)::

    from openpanel_lite.dashboard.session import Viewer, dashboard_router, project_access

    @get("/p/{project_id:str}/overview", sync_to_thread=False)
    def overview(
        runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer], project_id: str
    ) -> Template:
        project = project_access(runtime, viewer, project_id)  # 404 unless the user is a member
        return Template("overview/page.html", context={"viewer": viewer, "project": project})

    router = dashboard_router([overview])  # = Router("/", dependencies=DEPENDENCIES, ...)

- ``viewer: NamedDependency[Viewer]`` is the logged-in user (``viewer.user``, a meta User) and the CSRF
  token of their session (``viewer.csrf_token``). Without a live session the request never reaches the
  handler: a plain request gets 303 to ``/login?next=<path>``, an htmx request (``HX-Request``) gets 401
  with ``HX-Redirect: /login?next=<path>``.
- For every method other than GET/HEAD/OPTIONS, ``viewer`` also checks CSRF before the handler runs: the
  token must come in the ``X-CSRF-Token`` header (base.html puts it in ``hx-headers`` on <body>, so every
  htmx request sends it) or the ``csrf_token`` form field (``{% include "auth/_csrf.html" %}`` in a form),
  and an Origin (or Referer) header, when present, must be this server. Failure: 403. So a mutating
  handler must depend on ``viewer``; pre-login forms use ``pre_login_token`` + ``require_csrf``.
- ``project_access(runtime, viewer, project_id)`` returns the Project, or raises 404 when it does not
  exist *or* the user is not a member (the two are indistinguishable on purpose); ``owner=True`` also
  requires the owner role (403 for plain members).
- Pass ``viewer`` to templates that extend base.html: the nav, user menu and hx-headers come from it.

Session tokens: 256 random bits in an HttpOnly, SameSite=Lax cookie (Secure on https); SQLite keeps only
their SHA-256 (meta.login_sessions). A new token is made at every login, so a token from before the login
(a planted one included) is never promoted. CSRF token = HMAC-SHA256(auth secret key, "csrf:" + seed).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec
from litestar import Request, Router
from litestar.datastructures import Cookie, ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException
from litestar.response import Redirect
from litestar.types import ControllerRouterHandler

from openpanel_lite.config import Config
from openpanel_lite.ingest.client_ip import TrustedProxies, resolve_client_ip
from openpanel_lite.meta import login_sessions, members, projects, users
from openpanel_lite.meta.members import Role
from openpanel_lite.meta.projects import Project
from openpanel_lite.meta.users import User
from openpanel_lite.paths import SECRET_KEY_FILE
from openpanel_lite.runtime import Runtime

SESSION_COOKIE = "op_session"
PRE_COOKIE = "op_pre"  # pre-login: binds the login/onboarding form's CSRF token to this browser
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATH = "/login"
HOME_PATH = "/projects"
# Dashboard pages run only the scripts and styles served from /static: should tracked text ever slip
# past template escaping, an injected <script>, on*= handler or javascript: URL still cannot run
# (reliability.md S01). The templates hold no inline script; htmx needs no eval for the attributes used.
# The one inline style is the indicator rule htmx 2.0.11 adds to <head>, allowed by its hash
# (tests/security/test_s01_xss_corpus.py recomputes it from the vendored htmx.min.js).
HTMX_INDICATOR_STYLE_HASH = "sha256-faU7yAF8NxuMTNEwVmBz+VcYeIoBQ2EMHW3WaVxCvnk="
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src 'self'; style-src 'self' '{HTMX_INDICATOR_STYLE_HASH}'; "
    "img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Dashboard forms are a few hundred bytes; without this, Litestar reads up to 10 MB of any POST into
# memory before a handler can refuse it (reliability.md S12).
FORM_MAX_BODY_BYTES = 64 * 1024
SECURITY_HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
]


class Viewer(msgspec.Struct, frozen=True, kw_only=True):
    """The logged-in user of a dashboard request."""

    user: User
    csrf_token: str  # for hx-headers and hidden form fields
    session_id: str  # SHA-256 of the cookie token: safe to log, useless as a cookie


class LoginRedirect(HTTPException):
    """No live session: 303 to the login page (or 401 + HX-Redirect for htmx)."""

    status_code = 303


# ------------------------------------------------------------------------------------------------
# the auth secret key


def auth_secret_key(cfg: Config) -> bytes:
    """``auth.secret_key``, or a random key generated once into ``<data dir>/secret.key`` (mode 0600)."""
    return _secret_key(cfg.auth.secret_key, str(cfg.data_dir.resolve()))


@functools.cache
def _secret_key(configured: str, data_dir: str) -> bytes:
    if configured:
        return configured.encode()
    path = Path(data_dir) / SECRET_KEY_FILE
    try:
        # O_EXCL: when two processes start at once, exactly one writes and both read the same key.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable key; delete it to generate a new one")
    return key.encode()


def _hmac(cfg: Config, message: str) -> str:
    return hmac.new(auth_secret_key(cfg), message.encode(), hashlib.sha256).hexdigest()


def csrf_token_for(cfg: Config, csrf_seed: str) -> str:
    return _hmac(cfg, "csrf:" + csrf_seed)


def pre_login_token(cfg: Config, pre_cookie: str) -> str:
    """The CSRF token of a pre-login form, bound to the browser's ``op_pre`` cookie."""
    return _hmac(cfg, "pre:" + pre_cookie)


# ------------------------------------------------------------------------------------------------
# CSRF


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower()


def same_origin(request: Request[Any, Any, Any], cfg: Config) -> bool:
    """False when the Origin (or, lacking it, the Referer) names another site; True when neither is sent.

    Browsers send Origin on every POST, so a cross-site form or fetch is caught here even before the
    token check; non-browser clients (scripts, tests) send neither and rely on the token alone.
    """
    given = request.headers.get("origin")
    if given is None:
        referer = request.headers.get("referer")
        if not referer:
            return True
        given = referer
    origin = _origin_of(given)  # "null" (sandboxed frames, file://) gives None: refused
    if origin is None:
        return False
    own = {_origin_of(cfg.base_url), _origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}")}
    return origin in own


async def require_csrf(request: Request[Any, Any, Any], cfg: Config, expected: str) -> None:
    """403 unless the request carries ``expected`` (header or form field) and comes from this site."""
    if not same_origin(request, cfg):
        raise PermissionDeniedException("cross-origin request refused")
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not given or not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise PermissionDeniedException("CSRF token missing or invalid")


# ------------------------------------------------------------------------------------------------
# sessions and cookies


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (other hosts, ``//x``, ``\\x``) gives /projects."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME_PATH
    if any(ord(c) < 32 for c in target):
        return HOME_PATH
    return target


def login_required(request: Request[Any, Any, Any]) -> LoginRedirect:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if is_htmx(request):
        # A partial's own URL is no place to land; the page that asked for it is.
        current = urlsplit(request.headers.get("hx-current-url", ""))
        here = current.path + (f"?{current.query}" if current.query else "") if current.path else HOME_PATH
    target = LOGIN_PATH if here == HOME_PATH else f"{LOGIN_PATH}?next={quote(here, safe='/')}"
    if is_htmx(request):
        # htmx follows HX-Redirect whatever the status; 401 tells scripts the truth.
        return LoginRedirect(status_code=401, detail="login required", headers={"HX-Redirect": target})
    return LoginRedirect(status_code=303, detail="login required", headers={"Location": target})


def secure_cookies(request: Request[Any, Any, Any], cfg: Config) -> bool:
    return request.url.scheme == "https" or cfg.base_url.startswith("https://")


def session_cookie(request: Request[Any, Any, Any], cfg: Config, token: str, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request, cfg),
    )


def pre_cookie(request: Request[Any, Any, Any], cfg: Config) -> tuple[str, Cookie | None]:
    """The browser's pre-login value, and a cookie to set when it had none yet."""
    value = request.cookies.get(PRE_COOKIE)
    if value and 20 <= len(value) <= 100:
        return value, None
    value = secrets.token_urlsafe(32)
    cookie = Cookie(
        key=PRE_COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request, cfg),
    )
    return value, cookie


def _expired(key: str) -> Cookie:
    return Cookie(key=key, value="", max_age=0, expires=0, path="/", httponly=True, samesite="lax")


def current_session(runtime: Runtime, request: Request[Any, Any, Any]) -> login_sessions.LoginSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    return login_sessions.get_login_session(runtime.meta, token)


def start_session(runtime: Runtime, request: Request[Any, Any, Any], user_id: str, target: str) -> Redirect:
    """Log ``user_id`` in with a brand-new token (any session the browser had is ended) and redirect."""
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        login_sessions.delete_login_session(runtime.meta, old)
    # Housekeeping rides on logins: expired rows are refused anyway, this only keeps the table small.
    login_sessions.purge_expired_sessions(runtime.meta)
    ttl = timedelta(hours=runtime.cfg.auth.session_ttl_hours)
    _session, token = login_sessions.create_login_session(runtime.meta, user_id, ttl=ttl)
    cookie = session_cookie(request, runtime.cfg, token, int(ttl.total_seconds()))
    return Redirect(safe_next(target), status_code=303, cookies=[cookie, _expired(PRE_COOKIE)])


def end_session(runtime: Runtime, request: Request[Any, Any, Any]) -> Redirect:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        login_sessions.delete_login_session(runtime.meta, token)
    return Redirect(LOGIN_PATH, status_code=303, cookies=[_expired(SESSION_COOKIE)])


def client_ip(request: Request[Any, Any, Any], cfg: Config) -> str:
    """The requester's address (trusted proxies as for ingest), for per-IP login limits."""
    headers: dict[str, str] = {}
    for name, value in request.headers.multi_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    trusted = _trusted(cfg.server.trusted_proxies)
    peer = request.client.host if request.client else None
    return resolve_client_ip(peer, headers, trusted, secret_authenticated=False) or "unknown"


@functools.cache
def _trusted(cidrs: tuple[str, ...]) -> TrustedProxies:
    return TrustedProxies.from_cidrs(cidrs)


# ------------------------------------------------------------------------------------------------
# the dependency, the access check and the router helper


async def provide_viewer(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Viewer:
    session = current_session(runtime, request)
    user = users.get_user(runtime.meta, session.user_id) if session is not None else None
    if session is None or user is None:
        raise login_required(request)
    viewer = Viewer(
        user=user, csrf_token=csrf_token_for(runtime.cfg, session.csrf_seed), session_id=session.id
    )
    if request.method not in SAFE_METHODS:
        await require_csrf(request, runtime.cfg, viewer.csrf_token)
    return viewer


DEPENDENCIES = {"viewer": Provide(provide_viewer)}


def project_role(runtime: Runtime, viewer: Viewer, project_id: str) -> tuple[Project, Role]:
    """The project and the viewer's role in it; 404 when either is missing."""
    role = members.get_role(runtime.meta, project_id, viewer.user.id)
    project = projects.get_project(runtime.meta, project_id) if role is not None else None
    if role is None or project is None:
        raise NotFoundException("project not found")
    return project, role


def project_access(runtime: Runtime, viewer: Viewer, project_id: str, *, owner: bool = False) -> Project:
    """The project if the viewer is a member (404 otherwise); with ``owner=True``, 403 for non-owners."""
    project, role = project_role(runtime, viewer, project_id)
    if owner and role != "owner":
        raise PermissionDeniedException("only the project's owners can do this")
    return project


def dashboard_router(route_handlers: Sequence[ControllerRouterHandler], path: str = "/") -> Router:
    """A Router whose handlers can ask for ``viewer``."""
    return Router(
        path=path,
        route_handlers=list(route_handlers),
        dependencies=DEPENDENCIES,
        response_headers=SECURITY_HEADERS,
        request_max_body_size=FORM_MAX_BODY_BYTES,
    )
