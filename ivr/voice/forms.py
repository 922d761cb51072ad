"""Twilio's form posts turned into typed values; anything malformed becomes a 400.

Unknown parameters are ignored on purpose: Twilio adds new ones from time to time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from uuid import UUID

from aiohttp import web
from multidict import MultiDictProxy

from flows.model import ConnectEnded, Digits, NoInput, Recorded
from ivr.destinations import is_flow_name
from ivr.identifiers import ACCOUNT_SID, RECORDING_SID, is_call_sid
from storage.evidence import CallEnding, CallRecord, RecordingStatus

__all__ = [
    "IDEMPOTENCY_HEADER",
    "MAX_FORM_BYTES",
    "account_sid_of",
    "call_ending_of",
    "call_record_of",
    "call_sid_of",
    "connect_ended_of",
    "digits_of",
    "flow_choice_of",
    "idempotency_token_of",
    "no_input_of",
    "read_form",
    "recorded_of",
    "recording_status_of",
    "seq_of",
    "transfer_of",
]

IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
# A real webhook body is about 1-2 KB; anything far larger is not Twilio.
MAX_FORM_BYTES = 64 * 1024

# \Z, not $: "$" also matches before a trailing newline, which a signed body may carry.
_DTMF = re.compile(r"^[0-9*#]{0,64}\Z")
_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
_FORM_TYPE = "application/x-www-form-urlencoded"


def _bad(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=reason + "\n")


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The POSTed form, or 400 when the body is not a UTF-8 url-encoded form."""
    if request.content_type != _FORM_TYPE:
        raise _bad(f"expected {_FORM_TYPE}")
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=request.content_length)
    try:
        form = await request.post()
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad("malformed form body") from exc
    return form


def _field(form: Mapping[str, object], name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise _bad(f"{name} must be a plain form field")
    return value


def account_sid_of(form: Mapping[str, object]) -> str | None:
    """The AccountSid, if the form names one; 400 if it is no account SID (``AC/../``)."""
    account_sid = _field(form, "AccountSid")
    if not account_sid:
        return None
    if not ACCOUNT_SID.match(account_sid):
        raise _bad("AccountSid malformed")
    return account_sid


def call_sid_of(form: Mapping[str, object]) -> str:
    call_sid = _field(form, "CallSid")
    if not is_call_sid(call_sid):
        raise _bad("CallSid missing or malformed")
    return call_sid


def call_record_of(form: Mapping[str, object]) -> CallRecord:
    """The call as we record it: ``caller`` is always the customer's side of the line.

    On an inbound call that is ``From``; on a call we placed (``outbound-api``, e.g. a
    prerecorded message offering the opt-out) it is ``To``.
    """
    direction = _field(form, "Direction") or "inbound"
    ours, theirs = ("From", "To") if direction.startswith("outbound") else ("To", "From")
    return CallRecord(
        call_sid=call_sid_of(form),
        account_sid=account_sid_of(form) or "",
        caller=_field(form, theirs),
        dialed=_field(form, ours),
        direction=direction,
    )


def digits_of(form: Mapping[str, object], seq: int) -> Digits:
    digits = _field(form, "Digits")
    if not _DTMF.match(digits):
        raise _bad("Digits must be phone keys")
    return Digits(seq=seq, digits=digits, finished_on_key=_field(form, "FinishedOnKey")[:1])


def no_input_of(form: Mapping[str, object], seq: int) -> NoInput:
    return NoInput(seq=seq)


_STATUS = re.compile(r"^[a-z-]{1,32}\Z")
# A count Twilio reports (seconds): ASCII digits, within what the columns hold. Twilio
# ends a call after 24 hours; anything past a week is not a duration but an attack.
_COUNT = re.compile(r"^[0-9]{1,9}\Z")
MAX_SECONDS = 7 * 24 * 3600
_TIMESTAMP = re.compile(r"^[\w ,:+-]{1,64}\Z")


def _count(form: Mapping[str, object], name: str) -> int | None:
    value = _field(form, name)
    return int(value) if _COUNT.match(value) and int(value) <= MAX_SECONDS else None


def recorded_of(form: Mapping[str, object], seq: int) -> Recorded:
    """A <Record> action: the recording, and how it ended (a key, or ``hangup``)."""
    sid = _field(form, "RecordingSid")
    url = _field(form, "RecordingUrl")
    if not RECORDING_SID.match(sid) or not url.startswith("https://"):
        raise _bad("RecordingSid and an https RecordingUrl are required")
    ended_by = _field(form, "Digits")
    if ended_by != "hangup" and not _DTMF.match(ended_by):
        raise _bad("Digits must be phone keys or 'hangup'")
    return Recorded(seq, sid, url, _count(form, "RecordingDuration") or 0, ended_by or "silence")


def connect_ended_of(form: Mapping[str, object], seq: int) -> ConnectEnded:
    """A <Dial> action (``DialCallStatus``) or an <Enqueue> action (``QueueResult``)."""
    status = _field(form, "DialCallStatus") or _field(form, "QueueResult")
    if not _STATUS.match(status):
        raise _bad("DialCallStatus or QueueResult is required")
    return ConnectEnded(seq, status)


def recording_status_of(form: Mapping[str, object]) -> RecordingStatus:
    sid = _field(form, "RecordingSid")
    status = _field(form, "RecordingStatus")
    if not RECORDING_SID.match(sid) or not _STATUS.match(status):
        raise _bad("RecordingSid and RecordingStatus are required")
    account_sid = account_sid_of(form)
    if account_sid is None:
        raise _bad("AccountSid is required")
    return RecordingStatus(
        recording_sid=sid,
        call_sid=call_sid_of(form),
        account_sid=account_sid,
        status=status,
        duration_s=_count(form, "RecordingDuration"),
        recording_url=_field(form, "RecordingUrl") or None,
        error_code=_field(form, "ErrorCode") or None,
    )


def seq_of(request: web.Request) -> int:
    raw = request.query.get("seq", "")
    if not _COUNT.match(raw) or len(raw) > 6:
        raise _bad("seq missing or malformed")
    return int(raw)


def call_ending_of(form: Mapping[str, object]) -> CallEnding:
    """A status callback: whatever of it is implausible is not kept (the ending still is)."""
    status, timestamp = _field(form, "CallStatus"), _field(form, "Timestamp")
    return CallEnding(
        call_sid=call_sid_of(form),
        status=status if _STATUS.match(status) else "unknown",
        duration_s=_count(form, "CallDuration"),
        twilio_timestamp=timestamp if _TIMESTAMP.match(timestamp) else None,
    )


def flow_choice_of(request: web.Request) -> tuple[str | None, str | None]:
    """``?flow=NAME&lang=xx`` from the number's configured voice URL, if any."""
    flow_name = request.query.get("flow") or None
    lang = request.query.get("lang") or None
    for value, what in ((flow_name, "flow"), (lang, "lang")):
        if value is not None and not is_flow_name(value):  # a language tag (en, es) fits it too
            raise _bad(f"{what} must be a lowercase name")
    return flow_name, lang


def transfer_of(request: web.Request) -> UUID | None:
    """``?transfer=ID``: the agent transfer this voice request starts (set by us via Twilio's API)."""
    raw = request.query.get("transfer")
    if raw is None:
        return None
    try:
        return UUID(raw)
    except ValueError as exc:
        raise _bad("transfer must be a transfer id") from exc


def idempotency_token_of(request: web.Request) -> str:
    """Twilio's per-event token (same on every retry), or '' when absent or implausible."""
    token = request.headers.get(IDEMPOTENCY_HEADER, "")
    return token if _TOKEN.match(token) else ""
