"""The staff API's request backlog: requests callers opened, and their status changes."""

from __future__ import annotations

from aiohttp import web

from ivr.access.audit import note_view, viewer_of
from ivr.access.roles import PRINCIPAL, requires
from ivr.api.errors import api_error
from ivr.api.params import fits_bigint, json_response, refuse_nul
from ivr.appkeys import PG_POOL
from ivr.time_budget import POOL_ACQUIRE_S
from storage.caller_requests import REQUEST_STATUSES, request_status_change, requests_by_status
from storage.ledger import chained

__all__ = ["change_request_status", "list_requests"]


@requires("staff")
async def list_requests(request: web.Request) -> web.Response:
    """``GET /api/requests?status=``: requests from the phone line, with their latest status."""
    status = request.query.get("status")
    if status is not None and status not in REQUEST_STATUSES:
        raise api_error(400, f"status must be one of {', '.join(REQUEST_STATUSES)}")
    refuse_nul(request)
    pool = request.config_dict[PG_POOL]
    await note_view(pool, viewer_of(request), "requests.list", status or "*")
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        rows = await requests_by_status(conn, status)
    return json_response({"requests": [dict(r) for r in rows]})


@requires("staff")
async def change_request_status(request: web.Request) -> web.Response:
    """``POST /api/requests/{id}/status`` ``{status, note}``: appended, never overwritten."""
    try:
        body = await request.json()
        status, note = str(body["status"]), body.get("note")
        if note is not None and (not isinstance(note, str) or "\x00" in note):
            raise TypeError("note")
        request_id = int(request.match_info["request_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise api_error(400, "send JSON with status (and an optional note)") from exc
    if not fits_bigint(request_id):
        raise api_error(404, "no such request")
    if status not in REQUEST_STATUSES:
        raise api_error(422, f"status must be one of {', '.join(REQUEST_STATUSES)}")
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn, chained(conn) as chain:
        changed = await request_status_change(chain, request_id, status, note, request[PRINCIPAL].name)
    if not changed:
        raise api_error(404, "no such request")
    return json_response({"request_id": request_id, "status": status}, status=201)
