"""Events on the API: staff read them with what became of each; receivers say they applied one."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from ivr.access.audit import note_view, viewer_of
from ivr.access.roles import requires
from ivr.api.auth import TOKEN
from ivr.api.errors import api_error
from ivr.api.params import json_response, page_size, refuse_nul
from ivr.appkeys import PG_POOL, SETTINGS
from ivr.integrations.deadline_watch import business_today
from ivr.integrations.envelope import envelope
from ivr.time_budget import POOL_ACQUIRE_S
from storage.event_receipts import applications_of, deliveries_of, record_application, was_sent_to
from storage.outbox import event_by_id, events_after, seq_of
from storage.revocations_due import due_revocations
from storage.tokens import INTEGRATION

__all__ = ["applied", "event_trail", "list_events", "revocations_due"]

# What a receiver may say it did: a line or two for the evidence, not a document.
MAX_DETAIL = 1000


@requires("staff")
async def list_events(request: web.Request) -> web.Response:
    """``GET /api/events?after=SEQ&subject=&limit=``: events in ledger order, as they are delivered."""
    refuse_nul(request)
    after_text = request.query.get("after", "0")
    if not (after_text.isascii() and after_text.isdigit()) or len(after_text) > 18:
        raise api_error(400, "after must be an event's sequence number (a whole number)")
    limit = page_size(request.query.get("limit", "100"))
    subject = request.query.get("subject")
    pool = request.config_dict[PG_POOL]
    await note_view(pool, viewer_of(request), "events.list", subject or "*")
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        found = await events_after(conn, int(after_text), limit, subject)
    source = request.config_dict[SETTINGS].base_url
    return json_response(
        {"events": [envelope(e, source) for e in found], "next_after": found[-1].seq if len(found) == limit else None}
    )


@requires("staff")
async def event_trail(request: web.Request) -> web.Response:
    """``GET /api/events/{event_id}``: the event, each delivery of it and each receiver's word it applied it."""
    refuse_nul(request)
    seq = _seq(request)
    pool = request.config_dict[PG_POOL]
    await note_view(pool, viewer_of(request), "events.read", request.match_info["event_id"])
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        event = await event_by_id(conn, seq)
        if event is None:
            raise api_error(404, "no such event")
        delivered, applied_by = await deliveries_of(conn, seq), await applications_of(conn, seq)
    source = request.config_dict[SETTINGS].base_url
    return json_response({"event": envelope(event, source), "deliveries": delivered, "applications": applied_by})


@requires("staff")
async def revocations_due(request: web.Request) -> web.Response:
    """``GET /api/revocations/due?as_of=YYYY-MM-DD&limit=``: revocations not applied by every subscriber.

    Overdue: past the honor-by date as of ``as_of`` (default today where the business is),
    so staff can also see what will be overdue by a coming day. Each with its subscriptions:
    delivered at, applied at, dead-lettered.
    """
    refuse_nul(request)
    today = business_today(request.config_dict[SETTINGS].business_timezone)
    as_of = _date(request.query.get("as_of")) or today
    limit = page_size(request.query.get("limit", "100"))
    pool = request.config_dict[PG_POOL]
    await note_view(pool, viewer_of(request), "revocations.due", as_of.isoformat())
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        found = await due_revocations(conn, as_of, limit)
    return json_response({"as_of": as_of, "revocations": [r.as_json() for r in found]})


def _date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        if len(text) != 10:  # fromisoformat also reads 20261204 and week dates
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError as exc:
        raise api_error(400, "as_of must be a date (YYYY-MM-DD)") from exc


@requires(INTEGRATION)
async def applied(request: web.Request) -> web.Response:
    """``POST /api/events/{event_id}/applied`` ``{detail?}``: the receiver applied it, chained (201; 200 if known).

    Only an integration token, and only for an event sent to its own subscription (another's: 404).
    """
    seq = _seq(request)
    token = request[TOKEN]
    if token.subscription_id is None:
        raise api_error(403, "only an integration token (scoped to a subscription) may say it applied an event")
    detail = await _detail(request)
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        if not await was_sent_to(conn, token.subscription_id, seq):
            raise api_error(404, "no such event for this subscription")
        new = await record_application(conn, token.subscription_id, seq, token.id, detail)
    answer = {"event_id": request.match_info["event_id"], "subscription_id": token.subscription_id, "recorded": new}
    return json_response(answer, status=201 if new else 200)


async def _detail(request: web.Request) -> str | None:
    if not request.body_exists:
        return None
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise TypeError("body")
        detail = body.get("detail")
        if detail is not None and (not isinstance(detail, str) or "\x00" in detail or len(detail) > MAX_DETAIL):
            raise TypeError("detail")
    except (ValueError, TypeError) as exc:
        raise api_error(400, f"send nothing, or JSON with detail (text of at most {MAX_DETAIL} characters)") from exc
    return detail


def _seq(request: web.Request) -> int:
    seq = seq_of(request.match_info["event_id"])
    if seq is None:
        raise api_error(404, "no such event (event ids look like evt_123)")
    return seq
