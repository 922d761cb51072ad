"""The pages door's sign-in: sessions in a cookie, a role per page, a CSRF token per form.

A page declares its roles with ``@requires``; the middleware sends a visitor without a
session to the sign-in form, refuses the wrong role (403), and refuses any POST whose
CSRF token does not match the session's.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.access.passwords import verify_secret
from ivr.access.roles import PRINCIPAL, PUBLIC, Principal, declared_roles, may_call, requires
from ivr.appkeys import PG_POOL, RATE_LIMITER, SETTINGS, WEB_SESSIONS
from ivr.time_budget import POOL_ACQUIRE_S
from storage.tokens import find_token
from storage.users import find_user
from storage.web_sessions import SESSION_TTL_S, WebSession

__all__ = [
    "HOME",
    "LOGIN_PATH",
    "SESSION_COOKIE",
    "WEB_SESSION",
    "login",
    "login_form",
    "logout",
    "render_page",
    "session_middleware",
]

HOME = "/staff"
SESSION_COOKIE = "ivr_session"
LOGIN_PATH = "/staff/login"
LOGIN_CSRF_COOKIE = "ivr_login_csrf"
COOKIE_PATH = "/staff"
LOGIN_WINDOW_S = 60
WEB_SESSION = web.RequestKey("web_session", WebSession)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Staff pages: a signed-in session with the page's role, and a CSRF token on every POST."""
    if request.match_info.http_exception is not None:
        return await handler(request)
    roles = declared_roles(request.match_info.handler)
    if roles is None:
        raise web.HTTPForbidden(text="this page declares no role, so no one may open it")
    if PUBLIC in roles:
        return await handler(request)
    session = await request.config_dict[WEB_SESSIONS].load(request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        raise web.HTTPSeeOther(f"{LOGIN_PATH}?next={quote(request.path_qs)}")
    if not may_call(session.role, roles):
        raise web.HTTPForbidden(text=f"a {session.role} may not open this page")
    if request.method == "POST":
        form = await request.post()
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            raise web.HTTPForbidden(text="the form is stale or forged (CSRF check failed); reload the page")
    request[WEB_SESSION] = session
    request[PRINCIPAL] = Principal(session.name, session.role, session.token_id)
    return await handler(request)


def render_page(request: web.Request, template: str, **context: object) -> web.Response:
    session = request.get(WEB_SESSION)
    return aiohttp_jinja2.render_template(template, request, {"session": session, **context})


def _secure(request: web.Request) -> bool:
    return request.config_dict[SETTINGS].base_url.startswith("https://")


@requires(PUBLIC)
async def login_form(request: web.Request) -> web.Response:
    """The sign-in form, with a CSRF token it must come back with (double-submit cookie)."""
    return _login_page(request, request.query.get("next", HOME), None)


def _login_page(request: web.Request, target: str, error: str | None) -> web.Response:
    csrf = secrets.token_urlsafe(24)
    response = render_page(request, "login.html", next=target, error=error, login_csrf=csrf)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        max_age=3600,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path=COOKIE_PATH,
    )
    return response


@requires(PUBLIC)
async def login(request: web.Request) -> web.Response:
    """Sign in with a username and password, or with a staff/admin API token."""
    form = await request.post()
    username, password, token = (str(form.get(k, "")).strip() for k in ("username", "password", "token"))
    target = str(form.get("next", HOME))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
        raise web.HTTPForbidden(text="the sign-in form is stale or forged (CSRF check failed); reload it")
    config = request.config_dict
    limits, per_min = config[RATE_LIMITER], config[SETTINGS].login_rate_per_min
    for scope, who in (("login-address", request.remote or "?"), ("login-user", username or "(token)")):
        wait = await limits.over(scope, who, per_min, LOGIN_WINDOW_S)
        if wait is not None:
            raise web.HTTPTooManyRequests(text=f"Too many sign-in attempts; try again in {wait} s.")
    name = role = None
    token_id = None
    async with config[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        if token:
            found = await find_token(conn, token)
            if found is not None and found.role in ("staff", "admin"):
                name, role, token_id = found.name, found.role, found.id
        elif username:
            user = await find_user(conn, username)
            if user is not None and verify_secret(password, user["password_hash"]):
                name, role = user["username"], user["role"]
    if name is None or role is None:
        return _login_page(request, target, "Those details did not sign you in.")
    session_id, _ = await config[WEB_SESSIONS].open(name, role, token_id)
    response = web.HTTPSeeOther(target if target.startswith(HOME) else HOME)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path=COOKIE_PATH,
    )
    raise response


@requires("staff")
async def logout(request: web.Request) -> web.Response:
    await request.config_dict[WEB_SESSIONS].close(request.cookies.get(SESSION_COOKIE, ""))
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise response
