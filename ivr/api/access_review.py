"""The admins' review of who looked at what: the access log and the legal holds in force."""

from __future__ import annotations

from aiohttp import web

from ivr.access.audit import note_view, viewer_of
from ivr.access.roles import requires
from ivr.api.params import json_response, page_size
from ivr.appkeys import PG_POOL
from ivr.time_budget import POOL_ACQUIRE_S
from storage.access_log import access_log_entries
from storage.retention import active_holds

__all__ = ["access_log"]


@requires("admin")
async def access_log(request: web.Request) -> web.Response:
    """``GET /api/access-log[?limit=]``: who looked at what, newest first (admins only)."""
    limit = page_size(request.query.get("limit", "200"))
    await note_view(request.config_dict[PG_POOL], viewer_of(request), "access_log.read", f"latest {limit}")
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        rows = await access_log_entries(conn, limit)
        holds = [dict(h) for h in await active_holds(conn) if h["action"] == "place"]
    return json_response({"entries": [dict(r) for r in rows], "holds": holds})
