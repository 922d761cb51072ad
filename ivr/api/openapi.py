"""``GET /api/openapi.json``: the API described for clients (kept equal to the router by a test)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ivr.auth import requires

__all__ = ["OPENAPI", "openapi_document"]

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_AUTH = {"401": _ERROR, "403": _ERROR}


def _op(summary: str, role: str, params: list[dict[str, Any]] | None = None, **responses: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "x-roles": [role],
        "parameters": params or [],
        "responses": {"200": {"description": "OK"}, **_AUTH, **responses},
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Consent IVR API", "version": "1.0.0"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/transfers": {
            "post": _op("Move a live caller into a flow", "agent", **{"201": {"description": "Created"}})
        },
        "/api/transfers/{transfer_id}": {"get": _op("A transfer's status and events", "agent", [_path("transfer_id")])},
        "/api/transfers/{transfer_id}/events": {
            "get": _op("A transfer's events as Server-Sent Events", "agent", [_path("transfer_id")])
        },
        "/api/subjects/{phone}/consents": {
            "get": _op("Consent state per purpose", "staff", [_path("phone"), _query("as_of"), _query("reason")])
        },
        "/api/consent-events": {
            "get": _op(
                "Search decisions (keyset pagination)",
                "staff",
                [_query(q) for q in ("phone", "purpose", "action", "channel", "from", "to", "cursor", "limit")],
            )
        },
        "/api/calls/{call_sid}/evidence": {"get": _op("A call's whole story", "staff", [_path("call_sid")])},
        "/api/calls/{call_sid}/evidence.zip": {"get": _op("A call's evidence bundle", "staff", [_path("call_sid")])},
        "/api/recordings/{recording_sid}/media": {"get": _op("A kept recording", "staff", [_path("recording_sid")])},
        "/api/requests": {"get": _op("Requests from the phone line", "staff", [_query("status")])},
        "/api/requests/{request_id}/status": {
            "post": _op(
                "Change a request's status", "staff", [_path("request_id")], **{"201": {"description": "Created"}}
            )
        },
        "/api/suppression": {"get": _op("Numbers not to contact now", "staff", [_query("purpose"), _query("format")])},
        "/api/access-log": {"get": _op("Who looked at what", "admin", [_query("limit")])},
        "/api/openapi.json": {"get": _op("This document", "agent")},
    },
}


@requires("agent", "staff")
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)
