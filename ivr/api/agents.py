"""The agent API: move a live caller into a flow, and watch what they decide."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from typing import Any
from uuid import UUID

from aiohttp import web

from ivr.access.audit import note_view, viewer_of
from ivr.access.roles import requires
from ivr.api.auth import TOKEN
from ivr.api.errors import api_error
from ivr.appkeys import PG_POOL, TRANSFER_DESK

__all__ = ["create_transfer", "get_transfer", "transfer_event_stream"]

HEARTBEAT_S = 15.0  # keeps proxies from closing an idle event stream
# A client that takes this long to accept a few hundred bytes is not reading: its
# stream is cut, so it cannot hold a slot (or a growing buffer) by never reading.
SEND_TIMEOUT_S = 10.0


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
    transfer_id = _transfer_id(request)
    await note_view(request.config_dict[PG_POOL], viewer_of(request), "transfer.read", str(transfer_id))
    transfer, events = await request.config_dict[TRANSFER_DESK].load(request[TOKEN], transfer_id)
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
    """``GET /api/transfers/{id}/events``: Server-Sent Events, past then live, until the end.

    Ends early (the client reconnects) if the client falls behind or the server stops;
    at once if the client goes away. Beyond the open streams allowed, 429.
    """
    desk = request.config_dict[TRANSFER_DESK]
    transfer_id = _transfer_id(request)
    # A caller's decisions as they happen are evidence read: noted like any other look.
    await note_view(request.config_dict[PG_POOL], viewer_of(request), "transfer.events", str(transfer_id))
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    async with desk.follow(request[TOKEN], transfer_id, functools.partial(_listening, request), HEARTBEAT_S) as events:
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client left: no one to tell
            async for event in events:
                await _send(request, response, _event_text(event))
            await response.write_eof()
    return response


def _event_text(event: dict[str, Any] | None) -> bytes:
    if event is None:
        return b": still here\n\n"
    data = json.dumps(event, default=str)
    return f"id: {event['id']}\nevent: {event['kind']}\ndata: {data}\n\n".encode()


async def _send(request: web.Request, response: web.StreamResponse, text: bytes) -> None:
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await response.write(text)
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the client stopped reading its event stream") from None


def _listening(request: web.Request) -> bool:
    transport = request.transport  # None once the connection is lost
    return transport is not None and not transport.is_closing()


def _transfer_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["transfer_id"])
    except ValueError as exc:
        raise api_error(404, "no such transfer") from exc
