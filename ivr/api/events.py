"""Events on the API: pulled as pages or a stream, with what became of each; receivers say they applied one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
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
from ivr.transfer_feed import StreamLimitReached
from storage.event_receipts import applications_of, deliveries_of, record_application, was_sent_to
from storage.outbox import EventType, event_by_id, events_after, seq_of
from storage.postgres import Connection
from storage.revocations_due import due_revocations
from storage.subscriptions import subscription_scope
from storage.tokens import INTEGRATION

__all__ = ["EVENT_STREAMS", "StreamSlots", "applied", "event_stream", "event_trail", "list_events", "revocations_due"]

# What a receiver may say it did: a line or two for the evidence, not a document.
MAX_DETAIL = 1000
# Keeps proxies from closing an idle stream, and finds a client that went away.
HEARTBEAT_S = 15.0
# A client that takes longer than this to take a write is not reading: its stream is cut.
SEND_TIMEOUT_S = 30.0
# Events read per query while a stream catches up (then it is live, polling).
STREAM_BATCH = 200
# Each open stream polls Postgres once per EVENT_POLL_INTERVAL_S while idle: this many per
# process is that many queries a second at the default; more systems should pull the page.
MAX_EVENT_STREAMS = 50


@requires("staff", INTEGRATION)
async def list_events(request: web.Request) -> web.Response:
    """``GET /api/events?after=SEQ&types=T1,T2&subject=&limit=``: events in ledger order, for pulling.

    ``next`` is the cursor to ask with next time (the last event's seq, or ``after`` when
    none came): events are only ever added with a higher seq, so nothing is skipped or
    repeated. An integration token reads only its subscription's types, from its start.
    """
    refuse_nul(request)
    limit = page_size(request.query.get("limit", "100"))
    subject = request.query.get("subject")
    pool = request.config_dict[PG_POOL]
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        after, types = await _feed(request, conn, _after(request.query.get("after", "0")))
    await note_view(pool, viewer_of(request), "events.list", subject or "*")
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        found = await events_after(conn, after, limit, subject, types)
    source = request.config_dict[SETTINGS].base_url
    return json_response(
        {
            "events": [envelope(e, source) for e in found],
            "next": found[-1].seq if found else after,
            "next_after": found[-1].seq if len(found) == limit else None,
        }
    )


@requires("staff", INTEGRATION)
async def event_stream(request: web.Request) -> web.StreamResponse:
    """``GET /api/events/stream?after=SEQ&types=``: the same feed as Server-Sent Events, then live.

    Each event's ``id:`` is its event id; a client reconnecting with ``Last-Event-ID`` resumes
    after it. A comment every ``HEARTBEAT_S`` keeps proxies from closing an idle stream (and
    finds a client that left). At most ``MAX_EVENT_STREAMS`` per process, else 429.
    """
    refuse_nul(request)
    resumed = request.headers.get("Last-Event-ID")
    given = _after(str(seq_of(resumed) or "x") if resumed else request.query.get("after", "0"))
    pool = request.config_dict[PG_POOL]
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        after, types = await _feed(request, conn, given)
    await note_view(pool, viewer_of(request), "events.stream", ",".join(types or ["*"]))
    settings = request.config_dict[SETTINGS]
    with request.app[EVENT_STREAMS].slot():
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client left: no one to tell
            quiet_since = time.monotonic()
            while request.transport is not None and not request.transport.is_closing():
                async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
                    found = await events_after(conn, after, STREAM_BATCH, None, types)
                for event in found:
                    data = json.dumps(envelope(event, settings.base_url), default=str, separators=(",", ":"))
                    await _write(request, response, f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n")
                    after = event.seq
                if found:
                    quiet_since = time.monotonic()
                    continue
                if time.monotonic() - quiet_since >= HEARTBEAT_S:
                    await _write(request, response, ": still here\n\n")
                    quiet_since = time.monotonic()
                await asyncio.sleep(settings.event_poll_interval_s)
    return response


class StreamSlots:
    """How many event streams this process holds open, and the most it will."""

    def __init__(self, most: int) -> None:
        self.most, self.open = most, 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if self.open >= self.most:
            raise StreamLimitReached(f"at most {self.most} event streams are open at once here; pull /api/events")
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1


EVENT_STREAMS = web.AppKey("event_streams", StreamSlots)


async def _feed(request: web.Request, conn: Connection, after: int) -> tuple[int, list[str] | None]:
    """The cursor and types to read with: an integration token's only within its subscription."""
    types = _types(request.query.get("types"))
    token = request[TOKEN]
    if token.role != INTEGRATION:
        return after, types
    scope = await subscription_scope(conn, token.subscription_id) if token.subscription_id else None
    if scope is None:
        raise api_error(403, "this token's subscription was removed")
    allowed, starts_after = scope
    return max(after, starts_after), [t for t in (types or allowed) if t in allowed]


def _after(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise api_error(400, "after (or Last-Event-ID) must be an event's sequence number or id (evt_123)")
    return int(text)


def _types(text: str | None) -> list[str] | None:
    if text is None:  # given but empty names no type: refused, as the document's pattern says
        return None
    asked = text.split(",")
    known = {t.value for t in EventType}
    if unknown := [t for t in asked if t not in known]:
        raise api_error(400, f"unknown event types {unknown}: types are {', '.join(sorted(known))}")
    return asked


async def _write(request: web.Request, response: web.StreamResponse, text: str) -> None:
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await response.write(text.encode())
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the client stopped reading its event stream") from None


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
    """``GET /api/revocations/due?as_of=YYYY-MM-DD&after=SEQ&limit=``: revocations not applied by every subscriber.

    Overdue: past the honor-by date as of ``as_of`` (default today where the business is),
    so staff can also see what will be overdue by a coming day. Each with its subscriptions:
    delivered at, applied at, dead-lettered.
    """
    refuse_nul(request)
    today = business_today(request.config_dict[SETTINGS].business_timezone)
    as_of = _date(request.query.get("as_of")) or today
    limit = page_size(request.query.get("limit", "100"))
    after = _after(request.query.get("after", "0").removeprefix("evt_"))
    pool = request.config_dict[PG_POOL]
    await note_view(pool, viewer_of(request), "revocations.due", as_of.isoformat())
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        found = await due_revocations(conn, as_of, limit, after)
    revocations = [r.as_json() for r in found]
    next_after = found[-1].seq if found else after
    return json_response({"as_of": as_of, "revocations": revocations, "next": next_after})


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
