"""Twilio's webhooks: verify, parse, hand to the call desk, answer with TwiML."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog
from aiohttp import web

from flows.model import Event
from ivr import inbound
from ivr.keys import CALL_DESK, METRICS, SIGNATURES
from ivr.twiml import TwimlRenderer

__all__ = [
    "answer",
    "call_status",
    "connected",
    "incoming_call",
    "no_input",
    "recording",
    "recording_status",
    "twiml_response",
]

log = structlog.get_logger(__name__)


def twiml_response(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml", charset="utf-8")


async def _verified_form(request: web.Request) -> Mapping[str, object]:
    """The form, once its signature proves Twilio sent it; 403 (and nothing stored) if not."""
    form = await inbound.read_form(request)
    if not request.app[SIGNATURES].is_genuine(request, form):  # type: ignore[arg-type]
        log.warning("forged_webhook", path=request.path, remote=request.remote)
        request.app[METRICS].signature_failures.inc()
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature\n")
    # Every line logged from here on for this request, aiohttp's access line included,
    # names the call (the error middleware clears it when the next request begins).
    structlog.contextvars.bind_contextvars(call_sid=form.get("CallSid"))
    return form


async def incoming_call(request: web.Request) -> web.Response:
    """``POST /twilio/voice``: a call comes in."""
    form = await _verified_form(request)
    call = inbound.call_record_of(form)
    token = inbound.idempotency_token_of(request)
    flow_name, lang = inbound.flow_choice_of(request)
    transfer_id = inbound.transfer_of(request)
    desk = request.app[CALL_DESK]
    return twiml_response(await desk.answer_call(call, token, flow_name=flow_name, lang=lang, transfer_id=transfer_id))


async def _take_input(request: web.Request, event_of: Callable[[Mapping[str, object], int], Event]) -> web.Response:
    """Every callback that answers prompt ``?seq=N``: keys, silence, a recording, a connection."""
    form = await _verified_form(request)
    event = event_of(form, inbound.seq_of(request))
    token = inbound.idempotency_token_of(request)
    desk = request.app[CALL_DESK]
    return twiml_response(await desk.take_input(inbound.call_sid_of(form), event, token))


async def answer(request: web.Request) -> web.Response:
    """``POST /twilio/answer?seq=N``: the caller pressed keys at prompt N."""
    return await _take_input(request, inbound.digits_of)


async def no_input(request: web.Request) -> web.Response:
    """``POST /twilio/no-input?seq=N``: prompt N ended in silence (or an empty recording)."""
    return await _take_input(request, inbound.no_input_of)


async def recording(request: web.Request) -> web.Response:
    """``POST /twilio/recording?seq=N``: the <Record> at prompt N ended."""
    return await _take_input(request, inbound.recorded_of)


async def connected(request: web.Request) -> web.Response:
    """``POST /twilio/connected?seq=N``: the <Dial>/<Enqueue> at prompt N ended."""
    return await _take_input(request, inbound.connect_ended_of)


async def recording_status(request: web.Request) -> web.Response:
    """``POST /twilio/recording-status``: Twilio finished (or failed) processing a recording."""
    form = await _verified_form(request)
    await request.app[CALL_DESK].note_recording_status(inbound.recording_status_of(form))
    return twiml_response(TwimlRenderer.empty())


async def call_status(request: web.Request) -> web.Response:
    """``POST /twilio/status``: the call ended. Twilio ignores the body."""
    form = await _verified_form(request)
    await request.app[CALL_DESK].end_call(inbound.call_ending_of(form))
    return twiml_response(TwimlRenderer.empty())
