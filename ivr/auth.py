"""Bearer-token authentication and per-route roles for everything under ``/api/``.

Every API handler declares the roles allowed to call it with ``@requires(...)``; the
middleware refuses a request without a live token (401) or with the wrong role (403),
and refuses to serve an API route that declared nothing (a bug, not a default).
Admins may call every route.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.keys import PG_POOL, RATE_LIMITER, SETTINGS, WEB_SESSIONS
from storage.tokens import Token, find_token
from storage.web_sessions import WebSession

__all__ = [
    "PRINCIPAL",
    "PUBLIC",
    "TOKEN",
    "Principal",
    "api_error",
    "auth_middleware",
    "page_middleware",
    "declared_roles",
    "requires",
]


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's holder or a signed-in staff member."""

    name: str
    role: str
    token_id: int | None


TOKEN = web.RequestKey("token", Token)
PRINCIPAL = web.RequestKey("principal", Principal)
API_PREFIX = "/api/"
PUBLIC = "public"  # a page anyone may load (it shows no evidence: sign-in, the agent page's shell)
_ROLES_ATTR = "__ivr_roles__"


def requires(*roles: str) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        setattr(handler, _ROLES_ATTR, frozenset(roles))
        return handler

    return mark


def declared_roles(handler: Callable[..., Awaitable[Any]]) -> frozenset[str] | None:
    return getattr(handler, _ROLES_ATTR, None)


def api_error(status: int, message: str) -> web.HTTPException:
    """An error for API clients: JSON ``{"error": message}`` with ``status``."""
    error_class = _ERRORS.get(status, web.HTTPBadRequest)
    return error_class(text=json.dumps({"error": message}), content_type="application/json")


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    422: web.HTTPUnprocessableEntity,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
    504: web.HTTPGatewayTimeout,
}


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX) or request.match_info.http_exception is not None:
        return await handler(request)
    roles = declared_roles(request.match_info.handler)
    if roles is None:
        raise api_error(403, "this route declares no role, so no one may call it")
    await _limit(request, "api-address", request.remote or "?")  # before any token is tried
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise api_error(401, "send Authorization: Bearer <token>")
    async with request.app[PG_POOL].acquire() as conn:
        token = await find_token(conn, secret.strip())
    if token is None:
        raise api_error(401, "unknown or revoked token")
    if token.role not in roles and token.role != "admin":
        raise api_error(403, f"a {token.role} token may not call this route (needs: {', '.join(sorted(roles))})")
    await _limit(request, "api-token", str(token.id))
    request[TOKEN] = token
    request[PRINCIPAL] = Principal(token.name, token.role, token.id)
    return await handler(request)


RATE_WINDOW_S = 60


async def _limit(request: web.Request, scope: str, who: str) -> None:
    """429 with Retry-After once ``who`` passes the API's per-minute allowance."""
    wait = await request.app[RATE_LIMITER].over(scope, who, request.app[SETTINGS].api_rate_per_min, RATE_WINDOW_S)
    if wait is not None:
        raise web.HTTPTooManyRequests(
            text=json.dumps({"error": f"too many requests; try again in {wait} s"}),
            content_type="application/json",
            headers={"Retry-After": str(wait)},
        )


STAFF_PREFIX = "/staff"
SESSION_COOKIE = "ivr_session"
LOGIN_PATH = "/staff/login"
WEB_SESSION = web.RequestKey("web_session", WebSession)


@web.middleware
async def page_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Staff pages: a signed-in session with the page's role, and a CSRF token on every POST."""
    if not request.path.startswith(STAFF_PREFIX) or request.match_info.http_exception is not None:
        return await handler(request)
    roles = declared_roles(request.match_info.handler)
    if roles is None:
        raise web.HTTPForbidden(text="this page declares no role, so no one may open it")
    if PUBLIC in roles:
        return await handler(request)
    session = await request.app[WEB_SESSIONS].load(request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        raise web.HTTPSeeOther(f"{LOGIN_PATH}?next={quote(request.path_qs)}")
    if session.role not in roles and session.role != "admin":
        raise web.HTTPForbidden(text=f"a {session.role} may not open this page")
    if request.method == "POST":
        form = await request.post()
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            raise web.HTTPForbidden(text="the form is stale or forged (CSRF check failed); reload the page")
    request[WEB_SESSION] = session
    request[PRINCIPAL] = Principal(session.name, session.role, session.token_id)
    return await handler(request)
