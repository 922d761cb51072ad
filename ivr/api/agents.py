"""The agent API: move a live caller into a flow, and watch what they decide."""

from __future__ import annotations

import json
from uuid import UUID

from aiohttp import web

from ivr.access.roles import requires
from ivr.api.auth import TOKEN
from ivr.api.errors import api_error
from ivr.appkeys import TRANSFER_DESK

__all__ = ["create_transfer", "get_transfer", "transfer_event_stream"]

HEARTBEAT_S = 15.0  # keeps proxies from closing an idle event stream


@requires("agent")
async def create_transfer(request: web.Request) -> web.Response:
    """``POST /api/transfers`` ``{call_sid, flow, return_to}`` -> ``201 {transfer_id, status}``."""
    try:
        body = await request.json()
        call_sid, flow, return_to = (str(body[key]) for key in ("call_sid", "flow", "return_to"))
    except (ValueError, KeyError, TypeError) as exc:
        raise api_error(400, "send JSON with call_sid, flow and return_to") from exc
    if any("\x00" in value for value in (call_sid, flow, return_to)):
        # A sip: return_to may hold any non-space character, but Postgres text cannot hold NUL.
        raise api_error(400, "NUL characters are not allowed")
    transfer_id = await request.config_dict[TRANSFER_DESK].start(request[TOKEN], call_sid, flow, return_to)
    location = f"/api/transfers/{transfer_id}"
    return web.json_response(
        {"transfer_id": str(transfer_id), "status": "requested", "events": f"{location}/events"},
        status=201,
        headers={"Location": location},
    )


@requires("agent")
async def get_transfer(request: web.Request) -> web.Response:
    """``GET /api/transfers/{id}``: status (the latest event) and every event so far."""
    transfer, events = await request.config_dict[TRANSFER_DESK].load(request[TOKEN], _transfer_id(request))
    decisions = [e["detail"] for e in events if e["kind"] == "decision"]
    return web.json_response(
        {
            "transfer_id": str(transfer.transfer_id),
            "call_sid": transfer.call_sid,
            "flow": transfer.flow_name,
            "return_to": transfer.return_to,
            "agent": transfer.agent,
            "status": transfer.status,
            "decisions": decisions,
            "events": events,
        },
        dumps=lambda obj: json.dumps(obj, default=str),
    )


@requires("agent")
async def transfer_event_stream(request: web.Request) -> web.StreamResponse:
    """``GET /api/transfers/{id}/events``: Server-Sent Events, past then live, until the end."""
    transfer_id = _transfer_id(request)
    await request.config_dict[TRANSFER_DESK].load(request[TOKEN], transfer_id)  # or 404
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    async for event in request.config_dict[TRANSFER_DESK].follow(transfer_id, HEARTBEAT_S):
        if event is None:
            await response.write(b": still here\n\n")
            continue
        data = json.dumps(event, default=str)
        await response.write(f"id: {event['id']}\nevent: {event['kind']}\ndata: {data}\n\n".encode())
    await response.write_eof()
    return response


def _transfer_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["transfer_id"])
    except ValueError as exc:
        raise api_error(404, "no such transfer") from exc
