"""Staff web pages: search, a person's consents, a call's evidence, requests, the access log.

Server-rendered (aiohttp-jinja2, autoescaped), readable when printed. Every page that
shows evidence writes the access log first, with the reason the staff member typed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp import web

from ivr.access.audit import Viewer, has_nul, note_view, viewer_of
from ivr.access.roles import requires
from ivr.appkeys import CALL_EVIDENCE, FLOWS, PG_POOL, SETTINGS
from ivr.evidence.call_evidence import MediaTampered, UnknownCall, UnknownRecordingKey
from ivr.identifiers import ACCOUNT_NUMBER, InvalidIdentifier, is_call_sid, normalize_phone
from ivr.integrations.deadline_watch import business_today
from ivr.staff.sign_in import WEB_SESSION, render_page
from ivr.subjects import resolve_subject
from ivr.time_budget import POOL_ACQUIRE_S
from storage.access_log import access_log_entries
from storage.call_story import subject_timeline
from storage.caller_requests import REQUEST_STATUSES, request_status_change, requests_by_status
from storage.consent_search import accounts_for_phone
from storage.consent_state import consent_states
from storage.customers import customer
from storage.ledger import chained
from storage.revocations_due import due_revocations

__all__ = [
    "access_log_page",
    "call_bundle_page",
    "call_page",
    "person_page",
    "recording_audio",
    "request_status",
    "requests_page",
    "revocations_page",
    "search_page",
]

# Rows on the revocations page: the oldest due first; more than this wants the API.
REVOCATIONS_SHOWN = 500


def _viewer(request: web.Request) -> Viewer:
    if has_nul(request):
        raise web.HTTPBadRequest(text="NUL characters are not allowed in parameters")
    return viewer_of(request)


def _phone(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except InvalidIdentifier as exc:
        raise web.HTTPBadRequest(text=exc.message) from exc


@requires("staff")
async def search_page(request: web.Request) -> web.Response:
    """Search by phone number, account number or CallSid."""
    query = request.query.get("q", "").strip()
    if not query:
        return render_page(request, "search.html", query="", error=None)
    if is_call_sid(query):
        raise web.HTTPSeeOther(f"/staff/calls/{query}")
    try:
        async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
            found = await resolve_subject(conn, query)  # a known account, even if it looks like a number
    except InvalidIdentifier:
        return render_page(
            request, "search.html", query=query, error="That is not a phone number, account number or CallSid."
        )
    raise web.HTTPSeeOther(f"/staff/people/{found.value}")


@requires("staff")
async def person_page(request: web.Request) -> web.Response:
    """A number's or an account's consents, each linked account's or number's beside them,
    and the timeline of all of them: the same reading as the API and the CLI (CR-5)."""
    subject = request.match_info["subject"]
    if not ACCOUNT_NUMBER.match(subject):
        subject = _phone(subject)
    pool = request.config_dict[PG_POOL]
    await note_view(pool, _viewer(request), "person.page", subject)
    now = datetime.now(UTC)
    rules = request.config_dict[FLOWS].purpose_rules()
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        known = await customer(conn, subject) if ACCOUNT_NUMBER.match(subject) else None
        linked = list(known.phones) if known is not None else await accounts_for_phone(conn, subject)
        states = await consent_states(conn, subject, rules, as_of=now)
        others = [(other, await consent_states(conn, other, rules, as_of=now)) for other in linked]
        timeline = await subject_timeline(conn, [subject, *linked])
    return render_page(
        request,
        "person.html",
        subject=subject,
        is_account=known is not None,
        states=states,
        linked=others,
        timeline=timeline,
        now=now,
    )


@requires("staff")
async def call_page(request: web.Request) -> web.Response:
    try:
        story = await request.config_dict[CALL_EVIDENCE].story(
            _viewer(request), request.match_info["call_sid"], "call.page"
        )
    except InvalidIdentifier as exc:
        raise web.HTTPBadRequest(text=exc.message) from exc
    except UnknownCall as exc:
        raise web.HTTPNotFound(text=exc.message) from exc
    return render_page(request, "call.html", story=story, call=story["call"]["row"])


@requires("staff")
async def call_bundle_page(request: web.Request) -> web.Response:
    try:
        bundle = await request.config_dict[CALL_EVIDENCE].bundle(_viewer(request), request.match_info["call_sid"])
    except InvalidIdentifier as exc:
        raise web.HTTPBadRequest(text=exc.message) from exc
    except UnknownCall as exc:
        raise web.HTTPNotFound(text=exc.message) from exc
    return bundle.download()


@requires("staff")
async def recording_audio(request: web.Request) -> web.Response:
    try:
        kept = await request.config_dict[CALL_EVIDENCE].audio(_viewer(request), request.match_info["recording_sid"])
    except InvalidIdentifier as exc:
        raise web.HTTPBadRequest(text=exc.message) from exc
    except MediaTampered as exc:
        raise web.HTTPConflict(text=f"{exc}: it is not played as evidence. Tell your administrator.") from exc
    except UnknownRecordingKey as exc:
        raise web.HTTPServiceUnavailable(text=f"{exc}: it cannot be played. Tell your administrator.") from exc
    if kept is None:
        raise web.HTTPNotFound(text="that recording has not been fetched yet")
    return kept.playback()


@requires("staff")
async def requests_page(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    pool = request.config_dict[PG_POOL]
    await note_view(pool, _viewer(request), "requests.page", status or "*")
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        rows = await requests_by_status(conn, status if status in REQUEST_STATUSES else None)
    return render_page(request, "requests.html", requests=rows, statuses=REQUEST_STATUSES, status=status)


@requires("staff")
async def request_status(request: web.Request) -> web.Response:
    form = await request.post()
    status = str(form.get("status", ""))
    # ASCII digits that fit a bigint: str.isdigit() also takes "²", which int() refuses.
    if status not in REQUEST_STATUSES or not re.fullmatch(r"[0-9]{1,18}", request.match_info["request_id"]):
        raise web.HTTPBadRequest(text="unknown status or request")
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn, chained(conn) as chain:
        await request_status_change(
            chain,
            int(request.match_info["request_id"]),
            status,
            str(form.get("note", "")) or None,
            request[WEB_SESSION].name,
        )
    raise web.HTTPSeeOther("/staff/requests")


@requires("staff")
async def revocations_page(request: web.Request) -> web.Response:
    """Revocations not yet applied by every subscribed system, overdue ones marked (as the API's)."""
    today = business_today(request.config_dict[SETTINGS].business_timezone)
    pool = request.config_dict[PG_POOL]
    await note_view(pool, _viewer(request), "revocations.page", today.isoformat())
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        rows = await due_revocations(conn, today, REVOCATIONS_SHOWN)
    return render_page(request, "revocations.html", revocations=rows, today=today)


@requires("admin")
async def access_log_page(request: web.Request) -> web.Response:
    # Reading who looked at what is itself a look: the review is reviewed too.
    await note_view(request.config_dict[PG_POOL], _viewer(request), "access_log.read", "latest 500")
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        rows = await access_log_entries(conn, 500)
    return render_page(request, "access_log.html", entries=rows)
