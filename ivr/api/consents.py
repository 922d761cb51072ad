"""The staff API's consent reads: a number's state, decision search, the suppression list.

Every read of evidence is written to the access log first.
"""

from __future__ import annotations

import base64
import csv
import io
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ivr.access.audit import note_view, viewer_of
from ivr.access.roles import requires
from ivr.api.errors import api_error
from ivr.api.params import fits_bigint, json_response, page_size, refuse_nul, time_param
from ivr.appkeys import FLOWS, PG_POOL
from ivr.csv_cells import safe_cell
from ivr.identifiers import ACCOUNT_NUMBER, normalize_phone
from ivr.subjects import resolve_subject
from ivr.time_budget import POOL_ACQUIRE_S
from storage.consent_search import accounts_for_phone, search_events, suppressed_numbers
from storage.consent_state import ConsentState, consent_states
from storage.customers import customer

__all__ = ["account_consents", "consent_events", "subject_consents", "suppression"]

_CHANNELS = ("keypad", "dialing_string", "verbal", "agent_assisted", "web_form", "written_form", "agent")


async def _noted(request: web.Request, action: str, target: str) -> None:
    refuse_nul(request)
    await note_view(request.config_dict[PG_POOL], viewer_of(request), action, target)


@requires("staff")
async def subject_consents(request: web.Request) -> web.Response:
    """``GET /api/subjects/{phone}/consents[?as_of=]``: state per purpose, for the number and its accounts."""
    phone = normalize_phone(request.match_info["phone"])
    as_of = time_param(request.query.get("as_of"), "as_of") or datetime.now(UTC)
    rules = request.config_dict[FLOWS].purpose_rules()
    await _noted(request, "subject.consents", phone)
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        accounts = await accounts_for_phone(conn, phone)
        subjects = {}
        for subject in [phone, *accounts]:
            subjects[subject] = [_state(state) for state in await consent_states(conn, subject, rules, as_of=as_of)]
    return json_response({"phone": phone, "as_of": as_of, "accounts": accounts, "consents": subjects})


@requires("staff")
async def account_consents(request: web.Request) -> web.Response:
    """``GET /api/accounts/{account}/consents[?as_of=]``: state per purpose, for the account and its numbers."""
    raw = request.match_info["account"]
    if not ACCOUNT_NUMBER.match(raw):
        raise api_error(400, f"{raw!r} is not an account number (4 to 20 digits)")
    as_of = time_param(request.query.get("as_of"), "as_of") or datetime.now(UTC)
    rules = request.config_dict[FLOWS].purpose_rules()
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        known = await customer(conn, raw)
    if known is None:
        raise api_error(404, f"no customer account {raw}")
    await _noted(request, "account.consents", raw)
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        subjects = {}
        for subject in [raw, *known.phones]:
            subjects[subject] = [_state(state) for state in await consent_states(conn, subject, rules, as_of=as_of)]
    return json_response({"account": raw, "as_of": as_of, "phones": list(known.phones), "consents": subjects})


def _state(state: ConsentState) -> dict[str, Any]:
    return {
        "purpose": state.purpose,
        "status": state.status.value,
        "basis": state.basis.value,
        "since": state.since,
        "event_id": state.event_id,
        "notice_id": state.notice_id,
        "honor_by": state.honor_by,
        "scope": state.scope,
        "decided_for": state.decided_for,
    }


def _cursor(query: Any) -> int:
    try:
        after = int(base64.urlsafe_b64decode(query["cursor"]).decode()) if "cursor" in query else 0
        if not fits_bigint(after):
            raise ValueError(after)
    except (ValueError, UnicodeDecodeError) as exc:
        raise api_error(400, "cursor must be the one a previous page gave") from exc
    return after


@requires("staff")
async def consent_events(request: web.Request) -> web.Response:
    """``GET /api/consent-events``: keyset-paginated search (``cursor`` from the last page)."""
    query = request.query
    if query.get("phone") and query.get("subject"):
        raise api_error(400, "give phone or subject, not both")
    phone = normalize_phone(query["phone"]) if query.get("phone") else None
    channel = query.get("channel")
    if channel is not None and channel not in _CHANNELS:
        raise api_error(400, f"channel must be one of {', '.join(_CHANNELS)}")
    action = query.get("action")
    if action is not None and action not in ("grant", "revoke"):
        raise api_error(400, "action must be grant or revoke")
    limit = page_size(query.get("limit", "100"))
    after = _cursor(query)
    pool = request.config_dict[PG_POOL]
    if query.get("subject"):  # a known account, or a number (decisions for it, or made from it)
        async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
            phone = (await resolve_subject(conn, query["subject"])).value
    await _noted(request, "consent_events.search", request.query_string or "*")
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        rows = await search_events(
            conn,
            phone=phone,
            purpose=query.get("purpose"),
            action=action,
            channel=channel,
            since=time_param(query.get("from"), "from"),
            until=time_param(query.get("to"), "to"),
            after_id=after,
            limit=limit,
        )
    events = [dict(r) for r in rows]
    cursor = base64.urlsafe_b64encode(str(events[-1]["id"]).encode()).decode() if len(events) == limit else None
    return json_response({"events": events, "next_cursor": cursor})


@requires("staff")
async def suppression(request: web.Request) -> web.StreamResponse:
    """``GET /api/suppression?purpose=telemarketing&format=csv|json[&changed_since=TIME]``: numbers not to contact now.

    With ``changed_since``, only the numbers whose suppression changed since then (for a
    dialer that diffs): ``numbers`` suppressed now and not then, ``lifted`` suppressed then
    and not now; ask next time with the answer's ``as_of``.
    """
    purpose = request.query.get("purpose", "telemarketing")
    fmt = request.query.get("format", "json")
    if purpose not in request.config_dict[FLOWS].purpose_rules():
        raise api_error(400, f"unknown purpose {purpose!r}")
    if fmt not in ("json", "csv"):
        raise api_error(400, "format must be json or csv")
    since = time_param(request.query.get("changed_since"), "changed_since")
    as_of = datetime.now(UTC)
    await _noted(request, "suppression", purpose)
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        rows = [dict(r) for r in await suppressed_numbers(conn, purpose, as_of=as_of)]
        then = {r["phone"] for r in await suppressed_numbers(conn, purpose, as_of=since)} if since else set()
    if since is not None:
        now = {r["phone"] for r in rows}
        rows = [r for r in rows if r["phone"] not in then]
        lifted = sorted(then - now)
    if fmt == "json":
        answer = {"purpose": purpose, "as_of": as_of, "numbers": rows}
        return json_response(answer | ({"changed_since": since, "lifted": lifted} if since else {}))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["phone", "revoked_at", "honor_by", *(["change"] if since else [])])
    for r in rows:
        change = ["suppressed"] if since else []
        writer.writerow([safe_cell(r["phone"]), r["revoked_at"].isoformat(), r["honor_by"] or "", *change])
    for phone in lifted if since else []:
        writer.writerow([safe_cell(phone), "", "", "lifted"])
    return web.Response(text=out.getvalue(), content_type="text/csv")
