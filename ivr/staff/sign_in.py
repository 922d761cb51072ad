"""The pages door's sign-in: sessions in a cookie, a role per page, a CSRF token per form.

A page declares its roles with ``@requires``; the middleware sends a visitor without a
session to the sign-in form, refuses the wrong role (403), and refuses any POST whose
CSRF token does not match the session's. A session holds only while whoever opened it
still may: every page load asks Postgres whether its token is still live, or its user
still enabled at the generation it signed in under (a disable or a new password since
ends it). Sign-in is limited per address and slowed per address and username
(``ivr.staff.sign_in_limits``); passwords are checked off the event loop, an unknown
user's at the same cost as a real one's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.access.passwords import check_password
from ivr.access.roles import PRINCIPAL, PUBLIC, Principal, declared_roles, may_call, requires
from ivr.appkeys import PG_POOL, SETTINGS, WEB_SESSIONS
from ivr.staff import sign_in_limits
from ivr.staff.sign_in_limits import Method
from ivr.time_budget import POOL_ACQUIRE_S
from storage.tokens import find_token, token_live
from storage.users import find_user, user_session_live
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
    sessions, session_id = request.config_dict[WEB_SESSIONS], request.cookies.get(SESSION_COOKIE, "")
    session = await sessions.load(session_id)
    if session is None or not await _still_allowed(request, session):
        if session is not None:
            await sessions.close(session_id)  # ended for good: no need to ask again
        to_sign_in = web.HTTPSeeOther(f"{LOGIN_PATH}?next={quote(request.path_qs)}")
        to_sign_in.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        raise to_sign_in
    if not may_call(session.role, roles):
        raise web.HTTPForbidden(text=f"a {session.role} may not open this page")
    if request.method == "POST":
        form = await request.post()
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            raise web.HTTPForbidden(text="the form is stale or forged (CSRF check failed); reload the page")
    request[WEB_SESSION] = session
    request[PRINCIPAL] = Principal(session.name, session.role, session.token_id)
    return await handler(request)


async def _still_allowed(request: web.Request, session: WebSession) -> bool:
    """Whether the session's token is still live, or its user still enabled at its generation
    (asked on every load, never cached: a revocation ends the session at its next request)."""
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        if session.token_id is not None:
            return await token_live(conn, session.token_id)
        return await user_session_live(conn, session.name, session.generation)


def render_page(request: web.Request, template: str, **context: object) -> web.Response:
    session = request.get(WEB_SESSION)
    return aiohttp_jinja2.render_template(template, request, {"session": session, **context})


def _secure(request: web.Request) -> bool:
    return request.config_dict[SETTINGS].base_url.startswith("https://")


@requires(PUBLIC)
async def login_form(request: web.Request) -> web.Response:
    """The sign-in form, with a CSRF token it must come back with (double-submit cookie)."""
    return _login_page(request, request.query.get("next", HOME), None)


def _login_page(request: web.Request, target: str, error: str | None, wait_s: int | None = None) -> web.Response:
    """The form again; with ``wait_s`` it says 429 and Retry-After, as a browser and a script expect."""
    csrf = secrets.token_urlsafe(24)
    response = render_page(request, "login.html", next=target, error=error, login_csrf=csrf)
    if wait_s is not None:
        response.set_status(web.HTTPTooManyRequests.status_code)
        response.headers["Retry-After"] = str(wait_s)
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
    username = "" if token else username  # a token signs in alone, whatever else was typed
    wait = await sign_in_limits.refusal(request, username)
    if wait is not None:
        return _login_page(request, target, f"Too many sign-in attempts; try again in {wait} s.", wait)
    holder = await (_token_holder(request, token) if token else _password_holder(request, username, password))
    if holder is None:
        delay = await sign_in_limits.failed(request, Method.TOKEN if token else Method.PASSWORD, username)
        later = f" Wait {delay} s before trying again." if delay else ""
        return _login_page(request, target, "Those details did not sign you in." + later)
    if not token:
        await sign_in_limits.signed_in(request, username)
    session_id, _ = await request.config_dict[WEB_SESSIONS].open(
        holder.name, holder.role, holder.token_id, holder.generation
    )
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


@dataclass(frozen=True)
class _Holder:
    """Who a sign-in opens a session for."""

    name: str
    role: str
    token_id: int | None
    generation: int


async def _token_holder(request: web.Request, token: str) -> _Holder | None:
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        found = await find_token(conn, token)
    if found is None or found.role not in ("staff", "admin"):
        return None
    return _Holder(found.name, found.role, found.id, 0)


async def _password_holder(request: web.Request, username: str, password: str) -> _Holder | None:
    user = None
    if username:
        async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
            user = await find_user(conn, username)
    # One scrypt check whether or not the user exists (or is disabled): the time a wrong
    # password takes must not say which. The connection is back in the pool meanwhile.
    if not await check_password(password, user.password_hash if user else None) or user is None:
        return None
    return _Holder(user.username, user.role, None, user.session_generation)


@requires("staff")
async def logout(request: web.Request) -> web.Response:
    await request.config_dict[WEB_SESSIONS].close(request.cookies.get(SESSION_COOKIE, ""))
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise response
