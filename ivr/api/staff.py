"""The staff API: consent state, decision search, a call's evidence and bundle, requests,
the suppression list; every read of evidence is written to the access log first."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from aiohttp import web

from ivr.auth import PRINCIPAL, api_error, requires
from ivr.bundle import evidence_bundle
from ivr.keys import FLOWS, MEDIA_STORE, PG_POOL, SETTINGS
from storage.ledger import canonical_json, chained, entry_hash
from storage.lookups import (
    access_log_entries,
    accounts_for_phone,
    call_story,
    kept_recording,
    note_access,
    request_status_change,
    requests_by_status,
    search_events,
    suppressed_numbers,
)
from storage.retention import active_holds
from storage.state import consent_state

__all__ = [
    "access_log",
    "call_bundle",
    "call_evidence",
    "change_request_status",
    "consent_events",
    "list_requests",
    "recording_media",
    "subject_consents",
    "suppression",
]

MAX_PAGE = 500
REQUEST_STATUSES = ("open", "in_progress", "done", "rejected")
_CHANNELS = ("keypad", "dialing_string", "verbal", "agent_assisted")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda obj: json.dumps(obj, default=str))


def phone_of(raw: str) -> str:
    """An E.164 number from what was typed (national numbers read as US), or 400."""
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException as exc:
        raise api_error(400, f"{raw!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise api_error(400, f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _time(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        # In UTC now: an offset that pushes it past year 1 or 9999 fails here, not in the database driver.
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise api_error(400, f"{name} must be an ISO 8601 time, e.g. 2026-11-28T09:00:00Z") from exc


def _page_size(raw: str) -> int:
    """A page size from the query (at most ``MAX_PAGE``), or 400."""
    try:
        limit = int(raw)
    except ValueError as exc:
        raise api_error(400, "limit must be a whole number") from exc
    if limit < 1:
        raise api_error(400, "limit must be at least 1")
    return min(limit, MAX_PAGE)


def _fits_bigint(value: int) -> bool:
    """Whether Postgres can take ``value`` as a bigint (no row has an id beyond it)."""
    return -(2**63) <= value < 2**63


def _no_nul(request: web.Request) -> None:
    """Postgres text cannot hold NUL: refuse it in anything of the request that reaches a query."""
    given = [*request.query.values(), *request.match_info.values(), request.headers.get("X-Access-Reason", "")]
    if any("\x00" in value for value in given):
        raise api_error(400, "NUL characters are not allowed in parameters")


async def audit(request: web.Request, action: str, target: str) -> None:
    """Write who is looking at what (and the reason they gave) before showing it."""
    _no_nul(request)
    who = request[PRINCIPAL]
    async with request.app[PG_POOL].acquire() as conn, chained(conn) as chain:
        await note_access(
            chain,
            token_id=who.token_id,
            actor=who.name,
            role=who.role,
            action=action,
            target=target,
            reason=request.query.get("reason") or request.headers.get("X-Access-Reason"),
            remote=request.remote,
        )


@requires("staff")
async def subject_consents(request: web.Request) -> web.Response:
    """``GET /api/subjects/{phone}/consents[?as_of=]``: state per purpose, for the number and its accounts."""
    phone = phone_of(request.match_info["phone"])
    as_of = _time(request.query.get("as_of"), "as_of") or datetime.now(UTC)
    rules = request.app[FLOWS].purpose_rules()
    await audit(request, "subject.consents", phone)
    async with request.app[PG_POOL].acquire() as conn:
        accounts = await accounts_for_phone(conn, phone)
        subjects = {}
        for subject in [phone, *accounts]:
            subjects[subject] = [
                _state(await consent_state(conn, subject, purpose, as_of=as_of, opt_out_days=days))
                for purpose, days in sorted(rules.items())
            ]
    return _json({"phone": phone, "as_of": as_of, "accounts": accounts, "consents": subjects})


def _state(state: Any) -> dict[str, Any]:
    return {
        "purpose": state.purpose,
        "status": state.status.value,
        "basis": state.basis.value,
        "since": state.since,
        "event_id": state.event_id,
        "notice_id": state.notice_id,
        "honor_by": state.honor_by,
        "scope": state.scope,
    }


@requires("staff")
async def consent_events(request: web.Request) -> web.Response:
    """``GET /api/consent-events``: keyset-paginated search (``cursor`` from the last page)."""
    query = request.query
    phone = phone_of(query["phone"]) if query.get("phone") else None
    channel = query.get("channel")
    if channel is not None and channel not in _CHANNELS:
        raise api_error(400, f"channel must be one of {', '.join(_CHANNELS)}")
    action = query.get("action")
    if action is not None and action not in ("grant", "revoke"):
        raise api_error(400, "action must be grant or revoke")
    limit = _page_size(query.get("limit", "100"))
    try:
        after = int(base64.urlsafe_b64decode(query["cursor"]).decode()) if "cursor" in query else 0
        if not _fits_bigint(after):
            raise ValueError(after)
    except (ValueError, UnicodeDecodeError) as exc:
        raise api_error(400, "cursor must be the one a previous page gave") from exc
    await audit(request, "consent_events.search", request.query_string or "*")
    async with request.app[PG_POOL].acquire() as conn:
        rows = await search_events(
            conn,
            phone=phone,
            purpose=query.get("purpose"),
            action=action,
            channel=channel,
            since=_time(query.get("from"), "from"),
            until=_time(query.get("to"), "to"),
            after_id=after,
            limit=limit,
        )
    events = [dict(r) for r in rows]
    cursor = base64.urlsafe_b64encode(str(events[-1]["id"]).encode()).decode() if len(events) == limit else None
    return _json({"events": events, "next_cursor": cursor})


def _call_sid(request: web.Request) -> str:
    call_sid = request.match_info["call_sid"]
    if not (call_sid.startswith("CA") and len(call_sid) == 34):
        raise api_error(400, "not a CallSid")
    return call_sid


async def load_story(request: web.Request, action: str) -> dict[str, Any]:
    call_sid = _call_sid(request)
    await audit(request, action, call_sid)
    async with request.app[PG_POOL].acquire() as conn:
        story = await call_story(conn, call_sid)
    if story is None:
        raise api_error(404, f"no call {call_sid}")
    story["chain_check"] = chain_check(story)
    return story


def chain_check(story: dict[str, Any]) -> dict[str, Any]:
    """Recompute each of the call's records' ledger hashes from the rows as they are now."""
    checked, bad = 0, []
    for name, value in story.items():
        for record in value if isinstance(value, list) else [value]:
            if not isinstance(record, dict) or "ledger" not in record:
                continue
            entry = record["ledger"]
            checked += 1
            if entry["hash"] is None or entry_hash(canonical_json(record["row"]), entry["prev_hash"]) != entry["hash"]:
                bad.append({"record": name, "id": record["row"].get("id"), "ledger_seq": entry["seq"]})
    return {"records": checked, "intact": not bad, "mismatches": bad}


@requires("staff")
async def call_evidence(request: web.Request) -> web.Response:
    """``GET /api/calls/{call_sid}/evidence``: the call's whole story, in order, chain-checked."""
    return _json(await load_story(request, "call.evidence"))


@requires("staff")
async def call_bundle(request: web.Request) -> web.Response:
    """``GET /api/calls/{call_sid}/evidence.zip``: story, media, receipts, chain proof, certification."""
    return await bundle_response(request)


async def bundle_response(request: web.Request) -> web.Response:
    """The call's evidence bundle as a zip download (the access log notes it first)."""
    story = await load_story(request, "call.bundle")
    async with request.app[PG_POOL].acquire() as conn:
        body = await evidence_bundle(conn, story, request.app[SETTINGS], request.app[FLOWS], request.app[MEDIA_STORE])
    return web.Response(
        body=body,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="evidence-{story["call"]["row"]["call_sid"]}.zip"'},
    )


@requires("staff")
async def recording_media(request: web.Request) -> web.Response:
    """``GET /api/recordings/{recording_sid}/media``: the kept audio, for playback."""
    kept = await kept_audio(request)
    if kept is None:
        raise api_error(404, "no kept media for that recording (not fetched yet)")
    media, content_type = kept
    return web.Response(body=media, content_type=content_type)


async def kept_audio(request: web.Request) -> tuple[bytes, str] | None:
    """The recording named in the path, from the configured store (the access log notes it first)."""
    sid = request.match_info["recording_sid"]
    await audit(request, "recording.media", sid)
    async with request.app[PG_POOL].acquire() as conn:
        return await kept_recording(conn, request.app[MEDIA_STORE], sid)


@requires("staff")
async def list_requests(request: web.Request) -> web.Response:
    """``GET /api/requests?status=``: requests from the phone line, with their latest status."""
    status = request.query.get("status")
    if status is not None and status not in REQUEST_STATUSES:
        raise api_error(400, f"status must be one of {', '.join(REQUEST_STATUSES)}")
    await audit(request, "requests.list", status or "*")
    async with request.app[PG_POOL].acquire() as conn:
        rows = await requests_by_status(conn, status)
    return _json({"requests": [dict(r) for r in rows]})


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
    if not _fits_bigint(request_id):
        raise api_error(404, "no such request")
    if status not in REQUEST_STATUSES:
        raise api_error(422, f"status must be one of {', '.join(REQUEST_STATUSES)}")
    async with request.app[PG_POOL].acquire() as conn, chained(conn) as chain:
        changed = await request_status_change(chain, request_id, status, note, request[PRINCIPAL].name)
    if not changed:
        raise api_error(404, "no such request")
    return _json({"request_id": request_id, "status": status}, status=201)


@requires("staff")
async def suppression(request: web.Request) -> web.StreamResponse:
    """``GET /api/suppression?purpose=telemarketing&format=csv|json``: numbers not to contact now."""
    purpose = request.query.get("purpose", "telemarketing")
    fmt = request.query.get("format", "json")
    if purpose not in request.app[FLOWS].purpose_rules():
        raise api_error(400, f"unknown purpose {purpose!r}")
    if fmt not in ("json", "csv"):
        raise api_error(400, "format must be json or csv")
    await audit(request, "suppression", purpose)
    async with request.app[PG_POOL].acquire() as conn:
        rows = [dict(r) for r in await suppressed_numbers(conn, purpose)]
    if fmt == "json":
        return _json({"purpose": purpose, "numbers": rows})
    lines = ["phone,revoked_at,honor_by"] + [
        f"{r['phone']},{r['revoked_at'].isoformat()},{r['honor_by'] or ''}" for r in rows
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/csv")


@requires("admin")
async def access_log(request: web.Request) -> web.Response:
    """``GET /api/access-log[?limit=]``: who looked at what, newest first (admins only)."""
    limit = _page_size(request.query.get("limit", "200"))
    async with request.app[PG_POOL].acquire() as conn:
        rows = await access_log_entries(conn, limit)
        holds = [dict(h) for h in await active_holds(conn) if h["action"] == "place"]
    return _json({"entries": [dict(r) for r in rows], "holds": holds})
