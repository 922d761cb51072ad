"""Twilio's webhooks: verify, parse, hand to the call desk, answer with TwiML."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog
from aiohttp import web

from flows.model import Event
from ivr.appkeys import METRICS, SETTINGS
from ivr.voice import forms
from ivr.voice.context import CALL_DESK, SIGNATURES
from ivr.voice.twiml import TwimlRenderer, twiml_response

__all__ = [
    "answer",
    "call_status",
    "connected",
    "incoming_call",
    "no_input",
    "recording",
    "recording_status",
]

log = structlog.get_logger(__name__)


async def _verified_form(request: web.Request) -> Mapping[str, object]:
    """The form, once its signature proves Twilio sent it for our account; 403 (and
    nothing stored) if not, 400 if its AccountSid is no account SID at all.

    Another account's webhook is refused, not ignored: a signature we accept on it means
    our auth token or shared key signs for an account this service does not fetch from,
    a misconfiguration Twilio's debugger then shows (and nothing of it enters our ledger).
    """
    form = await forms.read_form(request)
    if not request.config_dict[SIGNATURES].is_genuine(request, form):  # type: ignore[arg-type]
        log.warning("forged_webhook", path=request.path, remote=request.remote)
        request.config_dict[METRICS].signature_failures.inc()
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature\n")
    account_sid, ours = forms.account_sid_of(form), request.config_dict[SETTINGS].twilio_account_sid
    if account_sid is not None and ours is not None and account_sid != ours:
        log.warning("webhook_for_another_account", path=request.path, account_sid=account_sid)
        raise web.HTTPForbidden(text="AccountSid is not this service's Twilio account\n")
    # Every line logged from here on for this request, aiohttp's access line included,
    # names the call (the root's log-context middleware clears it when the next request begins).
    structlog.contextvars.bind_contextvars(call_sid=form.get("CallSid"))
    return form


async def incoming_call(request: web.Request) -> web.Response:
    """``POST /twilio/voice``: a call comes in."""
    form = await _verified_form(request)
    call = forms.call_record_of(form)
    token = forms.idempotency_token_of(request)
    flow_name, lang = forms.flow_choice_of(request)
    transfer_id = forms.transfer_of(request)
    desk = request.config_dict[CALL_DESK]
    return twiml_response(await desk.answer_call(call, token, flow_name=flow_name, lang=lang, transfer_id=transfer_id))


async def _take_input(request: web.Request, event_of: Callable[[Mapping[str, object], int], Event]) -> web.Response:
    """Every callback that answers prompt ``?seq=N``: keys, silence, a recording, a connection."""
    form = await _verified_form(request)
    event = event_of(form, forms.seq_of(request))
    token = forms.idempotency_token_of(request)
    desk = request.config_dict[CALL_DESK]
    return twiml_response(await desk.take_input(forms.call_sid_of(form), event, token))


async def answer(request: web.Request) -> web.Response:
    """``POST /twilio/answer?seq=N``: the caller pressed keys at prompt N."""
    return await _take_input(request, forms.digits_of)


async def no_input(request: web.Request) -> web.Response:
    """``POST /twilio/no-input?seq=N``: prompt N ended in silence (or an empty recording)."""
    return await _take_input(request, forms.no_input_of)


async def recording(request: web.Request) -> web.Response:
    """``POST /twilio/recording?seq=N``: the <Record> at prompt N ended."""
    return await _take_input(request, forms.recorded_of)


async def connected(request: web.Request) -> web.Response:
    """``POST /twilio/connected?seq=N``: the <Dial>/<Enqueue> at prompt N ended."""
    return await _take_input(request, forms.connect_ended_of)


async def recording_status(request: web.Request) -> web.Response:
    """``POST /twilio/recording-status``: Twilio finished (or failed) processing a recording."""
    form = await _verified_form(request)
    await request.config_dict[CALL_DESK].note_recording_status(forms.recording_status_of(form))
    return twiml_response(TwimlRenderer.empty())


async def call_status(request: web.Request) -> web.Response:
    """``POST /twilio/status``: the call's status changed (a final one ends it). Twilio ignores the body."""
    form = await _verified_form(request)
    await request.config_dict[CALL_DESK].note_call_status(forms.call_ending_of(form))
    return twiml_response(TwimlRenderer.empty())
