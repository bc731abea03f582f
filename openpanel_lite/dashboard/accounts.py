"""Accounts: first-run onboarding, login, logout and (when ``auth.allow_registration``) registration.

Routes: GET/POST /onboarding, GET/POST /login, POST /logout, GET/POST /register, GET /account and
POST /account/password; ``home`` is the handler for GET / (onboarding, login or the project list).

Login limits (reliability.md §5): every attempt is counted *before* the password is checked, per
account and per client IP, 10 per 15 minutes each; the 11th answers 429 without verifying anything.
A successful login clears its account's counter. The IP counter is left alone, so an attacker cannot
reset it with an account of their own; the price is that logins themselves count toward it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect, Template

from openpanel_lite.dashboard.forms import FormError, read_form
from openpanel_lite.dashboard.session import (
    DEPENDENCIES,
    FORM_MAX_BODY_BYTES,
    HOME_PATH,
    LOGIN_PATH,
    SECURITY_HEADERS,
    Viewer,
    client_ip,
    current_session,
    end_session,
    pre_cookie,
    pre_login_token,
    require_csrf,
    safe_next,
    start_session,
)
from openpanel_lite.meta import login_sessions, login_throttle, users
from openpanel_lite.meta.clock import utcnow
from openpanel_lite.meta.errors import MetaError
from openpanel_lite.meta.login_throttle import Attempt
from openpanel_lite.meta.users import User
from openpanel_lite.meta.validation import normalize_email
from openpanel_lite.runtime import Runtime

ONBOARDING_PATH = "/onboarding"
REGISTER_PATH = "/register"
ACCOUNT_PATH = "/account"


class LoginForm(msgspec.Struct, kw_only=True):
    email: str = ""
    password: str = ""
    next: str = ""


class SignupForm(msgspec.Struct, kw_only=True):
    email: str = ""
    name: str = ""
    password: str = ""
    password_confirm: str = ""


class SetupDone(Exception):
    """Onboarding was attempted after the first user exists."""


def _page(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    """A pre-login page whose forms carry a token bound to the browser's pre-login cookie."""
    value, cookie = pre_cookie(request, runtime.cfg)
    cookies: list[Cookie] = [cookie] if cookie is not None else []
    context = {
        **context,
        "pre_csrf": pre_login_token(runtime.cfg, value),
        "allow_registration": runtime.cfg.auth.allow_registration,
    }
    return Template(
        template_name=template,
        context=context,
        status_code=status,
        cookies=cookies,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


async def _check_pre_login_csrf(request: Request[Any, Any, Any], runtime: Runtime) -> None:
    value = request.cookies.get("op_pre", "")
    await require_csrf(request, runtime.cfg, pre_login_token(runtime.cfg, value) if value else "")


# ------------------------------------------------------------------------------------------------
# landing


@get("/", sync_to_thread=False, include_in_schema=False)
def home(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Redirect:
    """Onboarding before the first user exists, else the login page or the project list."""
    if users.count_users(runtime.meta) == 0:
        return Redirect(ONBOARDING_PATH, status_code=303)
    if current_session(runtime, request) is None:
        return Redirect(LOGIN_PATH, status_code=303)
    return Redirect(HOME_PATH, status_code=303)


# ------------------------------------------------------------------------------------------------
# login and logout


@get(LOGIN_PATH, sync_to_thread=False, include_in_schema=False)
def login_page(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    next_: Annotated[str, QueryParameter(name="next")] = "",
) -> Template | Redirect:
    if users.count_users(runtime.meta) == 0:
        return Redirect(ONBOARDING_PATH, status_code=303)
    if current_session(runtime, request) is not None:
        return Redirect(safe_next(next_), status_code=303)
    return _page(request, runtime, "auth/login.html", {"email": "", "next": safe_next(next_), "error": None})


def _register_attempts(runtime: Runtime, ip: str, account: str) -> Attempt | None:
    """Count this attempt for the IP and the account; the refusing counter, if either refuses."""
    now = utcnow()
    by_ip = login_throttle.register_attempt(runtime.meta, f"login-ip:{ip}", now=now)
    by_account = login_throttle.register_attempt(runtime.meta, f"login-account:{account}", now=now)
    refused = [a for a in (by_ip, by_account) if not a.allowed]
    return max(refused, key=lambda a: a.retry_after_s) if refused else None


def _account_key(email: str) -> str:
    try:
        return normalize_email(email)
    except MetaError:
        return email.strip().lower()[:300]


@post(LOGIN_PATH, include_in_schema=False)
async def login(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Template | Redirect:
    await _check_pre_login_csrf(request, runtime)
    try:
        form = await read_form(request, LoginForm)
    except FormError as e:
        return _page(
            request, runtime, "auth/login.html", {"email": "", "next": "", "error": str(e)}, status=400
        )
    context = {"email": form.email, "next": safe_next(form.next)}
    account = _account_key(form.email)
    refused = _register_attempts(runtime, client_ip(request, runtime.cfg), account)
    if refused is not None:
        minutes = -(-refused.retry_after_s // 60)
        error = f"Too many login attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        headers = {"Retry-After": str(refused.retry_after_s)}
        return _page(
            request, runtime, "auth/login.html", {**context, "error": error}, status=429, headers=headers
        )
    # argon2 takes ~50 ms of CPU: off the event loop.
    user = await asyncio.to_thread(users.authenticate, runtime.meta, form.email, form.password)
    if user is None:
        error = "Wrong email or password."
        return _page(request, runtime, "auth/login.html", {**context, "error": error}, status=400)
    login_throttle.clear_attempts(runtime.meta, f"login-account:{account}")
    return start_session(runtime, request, user.id, form.next)


@post("/logout", include_in_schema=False, dependencies=DEPENDENCIES)
async def logout(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer]
) -> Redirect:
    return end_session(runtime, request)


# ------------------------------------------------------------------------------------------------
# onboarding and registration


def _signup_context(form: SignupForm, error: str | None) -> dict[str, Any]:
    # The password is never echoed back into the page.
    return {"email": form.email, "name": form.name, "error": error}


@get(ONBOARDING_PATH, sync_to_thread=False, include_in_schema=False)
def onboarding_page(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
) -> Template | Redirect:
    if users.count_users(runtime.meta) > 0:
        return Redirect(LOGIN_PATH, status_code=303)
    return _page(request, runtime, "auth/onboarding.html", _signup_context(SignupForm(), None))


def _create_first_user(runtime: Runtime, form: SignupForm) -> User:
    # One write transaction around the check and the insert: two racing first visits make one admin.
    with runtime.meta.transaction():
        if users.count_users(runtime.meta) > 0:
            raise SetupDone
        return users.create_user(runtime.meta, form.email, form.password, name=form.name or None)


def _signup_problem(form: SignupForm) -> str | None:
    if form.password != form.password_confirm:
        return "The passwords do not match."
    return None


@post(ONBOARDING_PATH, include_in_schema=False)
async def onboarding(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Response[Any]:
    await _check_pre_login_csrf(request, runtime)
    if users.count_users(runtime.meta) > 0:
        return _setup_done(request, runtime)
    try:
        form = await read_form(request, SignupForm)
    except FormError as e:
        return _page(
            request, runtime, "auth/onboarding.html", _signup_context(SignupForm(), str(e)), status=400
        )
    problem = _signup_problem(form)
    if problem is None:
        try:
            user = await asyncio.to_thread(_create_first_user, runtime, form)
        except SetupDone:
            return _setup_done(request, runtime)
        except MetaError as e:
            problem = str(e)
        else:
            return start_session(runtime, request, user.id, "/projects/new")
    return _page(request, runtime, "auth/onboarding.html", _signup_context(form, problem), status=400)


def _setup_done(request: Request[Any, Any, Any], runtime: Runtime) -> Template:
    return _page(request, runtime, "auth/setup_done.html", {}, status=403)


@get(REGISTER_PATH, sync_to_thread=False, include_in_schema=False)
def register_page(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Template:
    if not runtime.cfg.auth.allow_registration:
        raise NotFoundException("registration is closed")
    return _page(request, runtime, "auth/register.html", _signup_context(SignupForm(), None))


@post(REGISTER_PATH, include_in_schema=False)
async def register(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Response[Any]:
    await _check_pre_login_csrf(request, runtime)
    if not runtime.cfg.auth.allow_registration:
        raise NotFoundException("registration is closed")
    try:
        form = await read_form(request, SignupForm)
    except FormError as e:
        return _page(
            request, runtime, "auth/register.html", _signup_context(SignupForm(), str(e)), status=400
        )
    # Sign-ups share the per-IP login budget, so open registration cannot mint accounts in bulk.
    refused = login_throttle.register_attempt(
        runtime.meta, f"login-ip:{client_ip(request, runtime.cfg)}", now=utcnow()
    )
    if not refused.allowed:
        context = _signup_context(form, "Too many attempts from your network. Try again later.")
        headers = {"Retry-After": str(refused.retry_after_s)}
        return _page(request, runtime, "auth/register.html", context, status=429, headers=headers)
    problem = _signup_problem(form)
    if problem is None:
        try:
            user = await asyncio.to_thread(
                users.create_user, runtime.meta, form.email, form.password, name=form.name or None
            )
        except MetaError as e:
            problem = str(e)
        else:
            return start_session(runtime, request, user.id, HOME_PATH)
    return _page(request, runtime, "auth/register.html", _signup_context(form, problem), status=400)


# ------------------------------------------------------------------------------------------------
# the account page: change the password


class PasswordForm(msgspec.Struct, kw_only=True):
    current_password: str = ""
    password: str = ""
    password_confirm: str = ""


def _account_page(
    viewer: Viewer, *, error: str | None = None, changed: bool = False, status: int = 200
) -> Template:
    context = {"viewer": viewer, "error": error, "changed": changed}
    return Template("auth/account.html", context=context, status_code=status)


@get(ACCOUNT_PATH, sync_to_thread=False, include_in_schema=False, dependencies=DEPENDENCIES)
def account_page(viewer: NamedDependency[Viewer], changed: FromQuery[str] = "") -> Template:
    return _account_page(viewer, changed=changed == "1")


@post(f"{ACCOUNT_PATH}/password", include_in_schema=False, dependencies=DEPENDENCIES)
async def change_password(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer]
) -> Template | Redirect:
    """Needs the current password (a stolen session alone cannot lock the owner out); logs out everywhere."""
    try:
        form = await read_form(request, PasswordForm)
    except FormError as e:
        return _account_page(viewer, error=str(e), status=400)
    if form.password != form.password_confirm:
        return _account_page(viewer, error="The new passwords do not match.", status=400)
    account = viewer.user.email
    # Guessing the current password through this form counts like guessing it at the login page.
    refused = _register_attempts(runtime, client_ip(request, runtime.cfg), account)
    if refused is not None:
        return _account_page(viewer, error="Too many attempts. Try again later.", status=429)
    checked = await asyncio.to_thread(users.authenticate, runtime.meta, account, form.current_password)
    if checked is None or checked.id != viewer.user.id:
        return _account_page(viewer, error="The current password is wrong.", status=400)
    login_throttle.clear_attempts(runtime.meta, f"login-account:{account}")
    try:
        await asyncio.to_thread(users.set_password, runtime.meta, viewer.user.id, form.password)
    except MetaError as e:
        return _account_page(viewer, error=str(e), status=400)
    login_sessions.delete_sessions_for_user(runtime.meta, viewer.user.id)
    return start_session(runtime, request, viewer.user.id, f"{ACCOUNT_PATH}?changed=1")


router = Router(
    path="/",
    route_handlers=[
        home,
        *(login_page, login, logout, onboarding_page, onboarding, register_page, register),
        *(account_page, change_password),
    ],
    response_headers=SECURITY_HEADERS,
    request_max_body_size=FORM_MAX_BODY_BYTES,
)
