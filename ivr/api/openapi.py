"""``GET /api/openapi.json``: the API described for clients (kept equal to the router by a test,
and to the running service's answers by a schemathesis contract test)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ivr.access.roles import requires
from ivr.api.channel_consents import CHANNELS, GRANT_VERIFICATIONS, MEDIA_TYPES
from ivr.identifiers import ACCOUNT_NUMBER, CALL_SID, RECORDING_SID

__all__ = ["OPENAPI", "openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {"type": "object", "properties": required | optional, "required": list(required)}


_STRING = {"type": "string"}
# Postgres text cannot hold NUL, so the API refuses it (400) in anything it may store or search.
_TEXT = {"type": "string", "pattern": "^[^\\x00]*$"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_ROWS = {"type": "array", "items": {"type": "object"}}
_ERROR = _json(_ref("Error"), "error")
# Every route: no or an unknown token, the wrong role, or past the per-minute allowance.
_ALWAYS = {
    "401": _ERROR,
    "403": _ERROR,
    "429": {
        "description": "too many requests",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
        "content": {"application/json": {"schema": _ref("Error")}},
    },
}


def _op(
    summary: str,
    role: str,
    ok: dict[str, Any],
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    """One operation; ``ok`` maps the success status to its response."""
    operation: dict[str, Any] = {
        "summary": summary,
        "x-roles": [role],
        "parameters": params or [],
        "responses": ok | {str(status): _ERROR for status in errors} | _ALWAYS,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or _TEXT}


def _query(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema or _TEXT}


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


_LIMIT = {"type": "integer", "minimum": 1}
_TIME = {"type": "string", "format": "date-time"}
_CALL_SID = {"type": "string", "pattern": CALL_SID.pattern}
_RECORDING_SID = {"type": "string", "pattern": RECORDING_SID.pattern}
_ACCOUNT = {"type": "string", "pattern": ACCOUNT_NUMBER.pattern}
_TRANSFER_ID = {"type": "string", "format": "uuid"}
_REQUEST_STATUS = _enum("open", "in_progress", "done", "rejected")
_EVENT = _object({"id": {"type": "integer"}, "kind": _STRING, "at": _STRING, "detail": {"type": "object"}})
_NULLABLE_INTEGER = {"type": "integer", "nullable": True}
_EVENT_TYPE = _enum("consent.granted", "consent.revoked", "request.opened", "request.status_changed", "*")
_AFTER = {"type": "integer", "minimum": 0, "maximum": 999999999999999999}
# A comma-separated list of event types.
_TYPES = {
    "type": "string",
    "pattern": "^(consent\\.granted|consent\\.revoked|request\\.opened|request\\.status_changed|cpni\\.deemed_granted)"
    "(,(consent\\.granted|consent\\.revoked|request\\.opened|request\\.status_changed|cpni\\.deemed_granted))*$",
}
_SUBSCRIPTION_ID = {"type": "integer", "format": "int64", "minimum": 1}
_EVENT_ID = {"type": "string", "pattern": "^evt_[1-9][0-9]{0,17}$"}
_SUBSCRIPTION = _object(
    {
        "id": {"type": "integer"},
        "name": _STRING,
        "url": _STRING,
        "events": {"type": "array", "items": _STRING},
        "scheme": _enum("v1", "v1a"),
        "state": _enum("active", "disabled", "removed"),
        "created_at": _STRING,
        "disabled_at": _NULLABLE_STRING,
        "disabled_reason": _NULLABLE_STRING,
        "deliveries": _object(
            {"pending": {"type": "integer"}, "delivered": {"type": "integer"}, "dead": {"type": "integer"}}
        ),
    }
)

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": _STRING}),
    "TransferRequest": _object({"call_sid": _CALL_SID, "flow": _TEXT, "return_to": _TEXT}),
    "TransferCreated": _object({"transfer_id": _TRANSFER_ID, "status": _STRING, "events": _STRING}),
    "Transfer": _object(
        {
            "transfer_id": _TRANSFER_ID,
            "call_sid": _STRING,
            "flow": _STRING,
            "return_to": _STRING,
            "agent": _STRING,
            "status": _NULLABLE_STRING,
            "decisions": _ROWS,
            "events": {"type": "array", "items": _EVENT},
        }
    ),
    "ConsentState": _object(
        {
            "purpose": _STRING,
            "status": _STRING,
            "basis": _STRING,
            "since": _NULLABLE_STRING,
            "event_id": _NULLABLE_STRING,
            "notice_id": {"type": "integer", "nullable": True},
            "honor_by": _NULLABLE_STRING,
            "scope": _STRING,
            "decided_for": _NULLABLE_STRING,
        }
    ),
    "SubjectConsents": _object(
        {
            "phone": _STRING,
            "as_of": _STRING,
            "accounts": {"type": "array", "items": _STRING},
            "consents": {"type": "object", "additionalProperties": {"type": "array", "items": _ref("ConsentState")}},
        }
    ),
    "AccountConsents": _object(
        {
            "account": _STRING,
            "as_of": _STRING,
            "phones": {"type": "array", "items": _STRING},
            "consents": {"type": "object", "additionalProperties": {"type": "array", "items": _ref("ConsentState")}},
        }
    ),
    "ConsentEvents": _object({"events": _ROWS, "next_cursor": _NULLABLE_STRING}),
    "NewConsent": _object(
        {
            "subject": _TEXT,
            "purpose": _TEXT,
            "action": _enum("grant", "revoke"),
            "channel": _enum(*CHANNELS),
            "text": _TEXT,
            "collected_by": _TEXT,
            "collected_at": _TIME,
        },
        verification={**_enum("none", *GRANT_VERIFICATIONS), "nullable": True},
        lang={**_TEXT, "nullable": True},
        document={
            **_object({"media_type": _enum(*MEDIA_TYPES), "content": {"type": "string", "format": "byte"}}),
            "nullable": True,
        },
    ),
    "ConsentRecorded": _object(
        {
            "id": {"type": "integer"},
            "event_id": _STRING,
            "subject": _STRING,
            "purpose": _STRING,
            "action": _STRING,
            "channel": _STRING,
            "honor_by": _NULLABLE_STRING,
            "document_sha256": _NULLABLE_STRING,
        }
    ),
    "CallStory": _object(
        {
            "call": {"type": "object"},
            "chain_check": _object(
                {"records": {"type": "integer"}, "intact": {"type": "boolean"}, "mismatches": _ROWS}
            ),
        }
    ),
    "Requests": _object({"requests": _ROWS}),
    "RequestStatusChange": _object({"status": _REQUEST_STATUS}, note=_TEXT | {"nullable": True}),
    "RequestStatusChanged": _object({"request_id": {"type": "integer"}, "status": _REQUEST_STATUS}),
    "Suppression": _object(
        {"purpose": _STRING, "as_of": _STRING, "numbers": _ROWS},
        changed_since=_STRING,
        lifted={"type": "array", "items": _STRING},
    ),
    "AccessLog": _object({"entries": _ROWS, "holds": _ROWS}),
    "NewSubscription": _object(
        {
            "url": {"type": "string", "format": "uri", "pattern": "^https://[^\\x00]+$", "maxLength": 2048},
            "events": {"type": "array", "items": _EVENT_TYPE, "minItems": 1},
        },
        name=_TEXT,
        ed25519={"type": "boolean"},
    ),
    "Subscription": _SUBSCRIPTION,
    "SubscriptionWithSecret": _object(_SUBSCRIPTION["properties"] | {"secret": _STRING}),
    "Subscriptions": _object({"subscriptions": {"type": "array", "items": _ref("Subscription")}}),
    "DeadLetters": _object({"dead_letters": _ROWS}),
    "Event": _object(
        {
            "specversion": _STRING,
            "id": _STRING,
            "type": _STRING,
            "source": _STRING,
            "time": _STRING,
            "datacontenttype": _STRING,
            "data": {"type": "object"},
        }
    ),
    "Events": _object(
        {
            "events": {"type": "array", "items": _ref("Event")},
            "next": {"type": "integer"},
            "next_after": _NULLABLE_INTEGER,
        }
    ),
    "RevocationsDue": _object(
        {
            "as_of": _STRING,
            "revocations": {
                "type": "array",
                "items": _object(
                    {
                        "event_id": _STRING,
                        "subject": _STRING,
                        "purpose": _STRING,
                        "revoked_at": _STRING,
                        "honor_by": _NULLABLE_STRING,
                        "overdue": {"type": "boolean"},
                        "subscriptions": {
                            "type": "array",
                            "items": _object(
                                {
                                    "subscription_id": {"type": "integer"},
                                    "name": _STRING,
                                    "delivered_at": _NULLABLE_STRING,
                                    "applied_at": _NULLABLE_STRING,
                                    "dead_lettered": {"type": "boolean"},
                                }
                            ),
                        },
                    }
                ),
            },
            "next": {"type": "integer"},  # the next page's after
        }
    ),
    "EventTrail": _object({"event": _ref("Event"), "deliveries": _ROWS, "applications": _ROWS}),
    "Applied": _object({"detail": _TEXT}),
    "AppliedRecorded": _object(
        {"event_id": _STRING, "subscription_id": {"type": "integer"}, "recorded": {"type": "boolean"}}
    ),
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Consent IVR API", "version": "1.0.0"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
    "security": [{"bearer": []}],
    "paths": {
        "/api/transfers": {
            "post": _op(
                "Move a live caller into a flow",
                "agent",
                {
                    "201": _json(_ref("TransferCreated"), "Created")
                    | {"headers": {"Location": {"schema": _STRING, "description": "the transfer"}}}
                },
                body=_ref("TransferRequest"),
                # 404: Twilio knows no such call; 502/503: Twilio failed, refused us, or is not configured.
                errors=(400, 404, 409, 422, 502, 503),
            )
        },
        "/api/transfers/{transfer_id}": {
            "get": _op(
                "A transfer's status and events",
                "agent",
                {"200": _json(_ref("Transfer"))},
                [_path("transfer_id", _TRANSFER_ID)],
                errors=(404,),
            )
        },
        "/api/transfers/{transfer_id}/events": {
            "get": _op(
                "A transfer's events as Server-Sent Events",
                "agent",
                {"200": {"description": "OK", "content": {"text/event-stream": {"schema": _STRING}}}},
                [_path("transfer_id", _TRANSFER_ID)],
                errors=(404,),
            )
        },
        "/api/subjects/{phone}/consents": {
            "get": _op(
                "Consent state per purpose",
                "staff",
                {"200": _json(_ref("SubjectConsents"))},
                [_path("phone"), _query("as_of", _TIME), _query("reason")],
                errors=(400,),
            )
        },
        "/api/accounts/{account}/consents": {
            "get": _op(
                "Consent state per purpose, for a customer account and each of its numbers",
                "staff",
                {"200": _json(_ref("AccountConsents"))},
                [_path("account", _ACCOUNT), _query("as_of", _TIME), _query("reason")],
                errors=(400, 404),
            )
        },
        "/api/consent-events": {
            "get": _op(
                "Search decisions (keyset pagination)",
                "staff",
                {"200": _json(_ref("ConsentEvents"))},
                [
                    _query("phone"),
                    _query("subject"),
                    _query("purpose"),
                    _query("action", _enum("grant", "revoke")),
                    _query("channel", _enum("keypad", "dialing_string", "verbal", "agent_assisted", *CHANNELS)),
                    _query("from", _TIME),
                    _query("to", _TIME),
                    _query("cursor"),
                    _query("limit", _LIMIT),
                    _query("reason"),
                ],
                errors=(400,),
            )
        },
        "/api/consents": {
            "post": _op(
                "Record a decision taken on another channel (web form, written form, agent), with its evidence",
                "staff",
                {"201": _json(_ref("ConsentRecorded"), "Created")},
                body=_ref("NewConsent"),
                errors=(400, 422),
            )
        },
        "/api/calls/{call_sid}/evidence": {
            "get": _op(
                "A call's whole story",
                "staff",
                {"200": _json(_ref("CallStory"))},
                [_path("call_sid", _CALL_SID), _query("reason")],
                errors=(400, 404),
            )
        },
        "/api/calls/{call_sid}/evidence.zip": {
            "get": _op(
                "A call's evidence bundle",
                "staff",
                {
                    "200": {
                        "description": "OK",
                        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                    }
                },
                [_path("call_sid", _CALL_SID), _query("reason")],
                errors=(400, 404),
            )
        },
        "/api/recordings/{recording_sid}/media": {
            "get": _op(
                "A kept recording",
                "staff",
                {
                    "200": {
                        "description": "OK",
                        "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
                    }
                },
                [_path("recording_sid", _RECORDING_SID), _query("reason")],
                errors=(400, 404, 409, 503),  # 409: swapped audio; 503: sealed with a key not held
            )
        },
        "/api/requests": {
            "get": _op(
                "Requests from the phone line",
                "staff",
                {"200": _json(_ref("Requests"))},
                [_query("status", _REQUEST_STATUS), _query("reason")],
                errors=(400,),
            )
        },
        "/api/requests/{request_id}/status": {
            "post": _op(
                "Change a request's status",
                "staff",
                {"201": _json(_ref("RequestStatusChanged"), "Created")},
                [_path("request_id", {"type": "integer", "format": "int64"})],
                body=_ref("RequestStatusChange"),
                errors=(400, 404, 422),
            )
        },
        "/api/suppression": {
            "get": _op(
                "Numbers not to contact now",
                "staff",
                {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": _ref("Suppression")},
                            "text/csv": {"schema": _STRING},
                        },
                    }
                },
                [
                    _query("purpose"),
                    _query("format", _enum("json", "csv")),
                    _query("changed_since", _TIME),
                    _query("reason"),
                ],
                errors=(400,),
            )
        },
        "/api/access-log": {
            "get": _op(
                "Who looked at what",
                "admin",
                {"200": _json(_ref("AccessLog"))},
                [_query("limit", _LIMIT)],
                errors=(400,),
            )
        },
        "/api/subscriptions": {
            "get": _op("Subscriptions to events, with delivery counts", "admin", {"200": _json(_ref("Subscriptions"))}),
            "post": _op(
                "Subscribe a URL to events (the secret is shown once)",
                "admin",
                {"201": _json(_ref("SubscriptionWithSecret"), "Created")},
                body=_ref("NewSubscription"),
                errors=(400, 422),
            ),
        },
        "/api/subscriptions/{subscription_id}": {
            "delete": _op(
                "Remove a subscription (its secrets are forgotten)",
                "admin",
                {"200": _json(_ref("Subscription"))},
                [_path("subscription_id", _SUBSCRIPTION_ID)],
                errors=(404,),
            )
        },
        "/api/subscriptions/{subscription_id}/disable": {
            "post": _op(
                "Stop sending to a subscription (its events wait)",
                "admin",
                {"200": _json(_ref("Subscription"))},
                [_path("subscription_id", _SUBSCRIPTION_ID)],
                errors=(404, 409),
            )
        },
        "/api/subscriptions/{subscription_id}/enable": {
            "post": _op(
                "Send to a subscription again",
                "admin",
                {"200": _json(_ref("Subscription"))},
                [_path("subscription_id", _SUBSCRIPTION_ID)],
                errors=(404, 409),
            )
        },
        "/api/subscriptions/{subscription_id}/rotate-secret": {
            "post": _op(
                "A new signing secret (the old one signs too during the grace)",
                "admin",
                {"201": _json(_ref("SubscriptionWithSecret"), "Created")},
                [_path("subscription_id", _SUBSCRIPTION_ID)],
                errors=(404,),
            )
        },
        "/api/subscriptions/{subscription_id}/dead-letters": {
            "get": _op(
                "Deliveries given up after the last attempt",
                "admin",
                {"200": _json(_ref("DeadLetters"))},
                [_path("subscription_id", _SUBSCRIPTION_ID), _query("limit", _LIMIT)],
                errors=(400, 404),
            )
        },
        "/api/events": {
            "get": _op(
                "Events in ledger order (CloudEvents envelopes)",
                "staff",
                {"200": _json(_ref("Events"))},
                [
                    _query("after", _AFTER),
                    _query("types", _TYPES),
                    _query("subject"),
                    _query("limit", _LIMIT),
                    _query("reason"),
                ],
                errors=(400, 403),
            )
        },
        "/api/events/stream": {
            "get": _op(
                "Events as Server-Sent Events, from a cursor (or Last-Event-ID), then live",
                "staff",
                {"200": {"description": "OK", "content": {"text/event-stream": {"schema": _STRING}}}},
                [
                    _query("after", _AFTER),
                    _query("types", _TYPES),
                    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": _EVENT_ID},
                    _query("reason"),
                ],
                errors=(400, 403, 429),
            )
        },
        "/api/events/{event_id}": {
            "get": _op(
                "An event, where it was delivered, and who applied it",
                "staff",
                {"200": _json(_ref("EventTrail"))},
                [_path("event_id", _EVENT_ID), _query("reason")],
                errors=(400, 404),
            )
        },
        "/api/events/{event_id}/applied": {
            "post": {
                **_op(
                    "A receiver applied the event (integration token of its subscription)",
                    "integration",
                    {
                        "200": _json(_ref("AppliedRecorded"), "Already recorded"),
                        "201": _json(_ref("AppliedRecorded"), "Recorded"),
                    },
                    [_path("event_id", _EVENT_ID)],
                    errors=(400, 404),
                ),
                "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("Applied")}}},
            }
        },
        "/api/revocations/due": {
            "get": _op(
                "Revocations not yet applied by every subscribed system; overdue past their honor-by date",
                "staff",
                {"200": _json(_ref("RevocationsDue"))},
                [
                    _query("as_of", {"type": "string", "format": "date"}),
                    _query("after", _AFTER),
                    _query("limit", _LIMIT),
                    _query("reason"),
                ],
                errors=(400,),
            )
        },
        "/api/openapi.json": {"get": _op("This document", "agent", {"200": _json({"type": "object"})})},
    },
}


@requires("agent", "staff")
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)
