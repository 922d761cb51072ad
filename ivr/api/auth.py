"""The JSON door's sign-in: a live bearer token with the route's role, within its allowance.

The middleware refuses a request without a live token (401) or with the wrong role
(403), refuses to serve a route that declared no role, and limits each address (before
any token is tried) and each token to ``API_RATE_PER_MIN`` requests a minute (429).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.access.roles import PRINCIPAL, Principal, declared_roles, may_call
from ivr.api.errors import api_error
from ivr.appkeys import PG_POOL, RATE_LIMITER, SETTINGS
from ivr.time_budget import POOL_ACQUIRE_S
from storage.tokens import Token, find_token

__all__ = ["TOKEN", "bearer_middleware"]

TOKEN = web.RequestKey("token", Token)
RATE_WINDOW_S = 60


@web.middleware
async def bearer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        return await handler(request)
    roles = declared_roles(request.match_info.handler)
    if roles is None:
        raise api_error(403, "this route declares no role, so no one may call it")
    await _limit(request, "api-address", request.remote or "?")  # before any token is tried
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise api_error(401, "send Authorization: Bearer <token>")
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        token = await find_token(conn, secret.strip())
    if token is None:
        raise api_error(401, "unknown or revoked token")
    if not may_call(token.role, roles):
        raise api_error(403, f"a {token.role} token may not call this route (needs: {', '.join(sorted(roles))})")
    await _limit(request, "api-token", str(token.id))
    request[TOKEN] = token
    request[PRINCIPAL] = Principal(token.name, token.role, token.id)
    return await handler(request)


async def _limit(request: web.Request, scope: str, who: str) -> None:
    """429 with Retry-After once ``who`` passes the API's per-minute allowance."""
    config = request.config_dict
    wait = await config[RATE_LIMITER].over(scope, who, config[SETTINGS].api_rate_per_min, RATE_WINDOW_S)
    if wait is not None:
        raise api_error(429, f"too many requests; try again in {wait} s", headers={"Retry-After": str(wait)})
