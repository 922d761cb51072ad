"""Twilio's side of the wire: signs webhooks and follows TwiML the way Twilio does.

Used by ``ivr simulate`` (a whole call from a terminal, against a running service) and
by the tests, which drive every call through it.

A ``FakeCall`` posts the same parameters Twilio posts (including the empty geographic
keys), signs every request with ``X-Twilio-Signature`` over the absolute URL it
requests, sends a fresh ``I-Twilio-Idempotency-Token`` per webhook event (the same one
on a retry), and reads the ``<Gather>`` it got back to decide what a keypress sends.
"""

from __future__ import annotations

import secrets
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator
from yarl import URL

__all__ = [
    "ACCOUNT_SID",
    "SILENCE",
    "FakeCall",
    "FakeTwilio",
    "Twiml",
    "new_call_sid",
    "new_caller",
    "simulate_call",
]

# A placeholder account for simulated calls; real webhooks carry the real one.
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


# Area codes in service, so that simulated callers are valid North American numbers.
_AREA_CODES = ("212", "312", "415", "617", "713", "206", "305", "404", "503", "602")


def new_caller() -> str:
    """A random, valid-looking US number (exchange never N11)."""
    exchange = f"{secrets.choice('23456789')}{secrets.choice('0123456789')}{secrets.choice('023456789')}"
    return f"+1{secrets.choice(_AREA_CODES)}{exchange}{secrets.randbelow(10000):04d}"


@dataclass(frozen=True)
class Twiml:
    """A TwiML answer as a caller would experience it."""

    status: int
    body: str

    @property
    def root(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def says(self) -> list[str]:
        return [el.text or "" for el in self.root.iter("Say")]

    @property
    def heard(self) -> str:
        return " ".join(self.says)

    @property
    def gather(self) -> ET.Element | None:
        return self.root.find("Gather")

    @property
    def redirect(self) -> str | None:
        el = self.root.find("Redirect")
        return el.text if el is not None else None

    @property
    def hangs_up(self) -> bool:
        return self.root.find("Hangup") is not None

    @property
    def verbs(self) -> list[str]:
        return [el.tag for el in self.root]


@dataclass
class Sent:
    url: str
    params: dict[str, str]
    token: str
    record_callback: str | None = None


@dataclass
class FakeCall:
    twilio: FakeTwilio
    call_sid: str
    caller: str
    dialed: str
    current: Twiml | None = None
    last: Sent | None = None
    sent: list[Sent] = field(default_factory=list)

    def params(self, status: str = "in-progress") -> dict[str, str]:
        params = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": status,
            "Called": self.dialed,
            "Caller": self.caller,
            "Direction": "inbound",
            "From": self.caller,
            "To": self.dialed,
        }
        for who in ("From", "To", "Caller", "Called"):
            for where in ("City", "State", "Zip", "Country"):
                params[who + where] = ""
        return params

    async def dial(self, query: str = "") -> Twiml:
        """Ring the service's voice webhook (``query`` as configured on the number, e.g. ``flow=x``)."""
        url = self.twilio.url("/twilio/voice" + (f"?{query}" if query else ""))
        return await self._post(url, self.params("ringing"))

    async def press(self, keys: str, *, buffered: bool = True) -> Twiml:
        """Type ``keys`` at the current <Gather>, ended the way Twilio would end it.

        A Gather ends at ``numDigits`` keys or at ``finishOnKey``; keys typed beyond
        that either reach the next Gather (``buffered``) or are lost. Twilio does not
        document which, so tests drive both.
        """
        gather = self._gather()
        num_digits = int(gather.get("numDigits", "0") or 0)
        finish_on_key = gather.get("finishOnKey", "#")
        end = len(keys)
        if finish_on_key and finish_on_key in keys:
            end = keys.index(finish_on_key) + 1
        if num_digits and num_digits < end:
            end = num_digits
        taken, rest = keys[:end], keys[end:]
        finished = taken[-1] if finish_on_key and taken.endswith(finish_on_key) else ""
        digits = taken[: len(taken) - len(finished)]
        params = self.params() | {"Digits": digits, "FinishedOnKey": finished, "msg": "Gather End"}
        answer = await self._post(gather.get("action", ""), params)
        if rest and buffered and answer.gather is not None:
            return await self.press(rest, buffered=True)
        return answer

    async def stay_silent(self) -> Twiml:
        """Say or press nothing: a <Gather> times out, a <Record> makes an empty recording,
        and either way Twilio moves on to the <Redirect> that follows."""
        assert self.current is not None, "the call has not been answered"
        waiting = self.current.gather is not None or self.current.root.find("Record") is not None
        assert waiting and self.current.redirect, "nothing is waiting, or no Redirect follows"
        return await self._post(self.current.redirect, self.params())

    async def record(self, *, seconds: int = 7, ended_by: str = "#") -> Twiml:
        """Speak at the current <Record> for ``seconds``; end with a key or ``hangup``."""
        record = self._verb("Record")
        recording_sid = "RE" + secrets.token_hex(16)
        params = self.params("completed" if ended_by == "hangup" else "in-progress") | {
            "RecordingSid": recording_sid,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}",
            "RecordingDuration": str(seconds),
            "Digits": ended_by,
        }
        return await self._post(record.get("action", ""), params)

    async def recording_processed(self, status: str = "completed") -> Twiml:
        """Twilio's recordingStatusCallback for the last recording made on this call."""
        made = [s for s in self.sent if "RecordingSid" in s.params]
        assert made, "nothing was recorded on this call"
        record = made[-1].params
        url = self.current_record_callback or self.twilio.url("/twilio/recording-status")
        params = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": self.call_sid,
            "RecordingSid": record["RecordingSid"],
            "RecordingUrl": record["RecordingUrl"],
            "RecordingStatus": status,
            "RecordingDuration": record["RecordingDuration"],
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
            "RecordingStartTime": "Sat, 28 Nov 2026 09:53:19 +0000",
            "ErrorCode": "0",
        }
        return await self._post(url, params, follow=False)

    async def connection_ends(self, status: str) -> Twiml:
        """The current <Dial> or <Enqueue> ends with ``status`` (DialCallStatus or QueueResult)."""
        assert self.current is not None
        dial = self.current.root.find("Dial")
        if dial is not None:
            params = self.params() | {"DialCallStatus": status, "DialCallDuration": "12"}
            return await self._post(dial.get("action", ""), params)
        enqueue = self._verb("Enqueue")
        params = self.params() | {"QueueResult": status, "QueueTime": "9", "QueueSid": "QU" + "0" * 32}
        return await self._post(enqueue.get("action", ""), params)

    @property
    def current_record_callback(self) -> str | None:
        for sent in reversed(self.sent):
            if sent.record_callback:
                return sent.record_callback
        return None

    def _verb(self, name: str) -> ET.Element:
        assert self.current is not None, "the call has not been answered"
        verb = self.current.root.find(name)
        assert verb is not None, f"no <{name}> in {self.current.body}"
        return verb

    async def keys(self, *presses: str) -> Twiml:
        for keys in presses:
            answer = await self.press(keys)
        return answer

    async def status_changes(self, status: str) -> Twiml:
        """Twilio's status callback for a status on the way (``ringing``, ``in-progress``)."""
        params = self.params(status) | {"CallbackSource": "call-progress-events", "SequenceNumber": "0"}
        return await self._post(self.twilio.url("/twilio/status"), params, follow=False)

    async def hang_up(self, duration_s: int = 42) -> Twiml:
        params = self.params("completed") | {
            "CallDuration": str(duration_s),
            "Duration": "1",
            "Timestamp": "Sat, 28 Nov 2026 09:53:19 +0000",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": "0",
        }
        return await self._post(self.twilio.url("/twilio/status"), params, follow=False)

    async def retry(self) -> Twiml:
        """Deliver the last webhook again, as Twilio does, with the same token."""
        assert self.last is not None
        return await self.twilio.post(self.last.url, self.last.params, token=self.last.token)

    def _gather(self) -> ET.Element:
        assert self.current is not None, "the call has not been answered"
        gather = self.current.gather
        assert gather is not None, f"nothing is listening for keys: {self.current.body}"
        return gather

    async def _post(self, url: str, params: dict[str, str], follow: bool = True) -> Twiml:
        token = str(uuid.uuid4())
        self.last = Sent(url, params, token)
        self.sent.append(self.last)
        answer = await self.twilio.post(url, params, token=token)
        if follow:
            self.current = answer
            if answer.status == 200 and (record := answer.root.find("Record")) is not None:
                self.last.record_callback = record.get("recordingStatusCallback")
        return answer


class FakeTwilio:
    """Makes calls against one service, signing with one auth token."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, auth_token: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.validator = RequestValidator(auth_token)

    def url(self, path: str) -> str:
        return self.base_url + path

    def call(self, caller: str | None = None, dialed: str = "+18445550100") -> FakeCall:
        return FakeCall(self, new_call_sid(), new_caller() if caller is None else caller, dialed)

    def sign(self, url: str, params: dict[str, str]) -> str:
        signature: str = self.validator.compute_signature(url, params)  # twilio is untyped (Any)
        return signature

    async def post(
        self,
        url: str,
        params: dict[str, str],
        *,
        token: str | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Twiml:
        all_headers = {
            "X-Twilio-Signature": self.sign(url, params) if signature is None else signature,
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": token or str(uuid.uuid4()),
        }
        all_headers.update(headers or {})
        if not all_headers["X-Twilio-Signature"]:
            del all_headers["X-Twilio-Signature"]
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = urlencode(params).encode()  # as Twilio sends it: UTF-8, url-encoded
        async with self.http.post(URL(url, encoded=True), data=body, headers=all_headers) as resp:
            return Twiml(resp.status, await resp.text())


SILENCE = "-"  # in a script: let the question time out
SPEAK = "rec:"  # in a script, "rec:8": speak for 8 seconds at a <Record>, then press #


async def simulate_call(
    twilio: FakeTwilio,
    next_keys: Callable[[Twiml], Awaitable[str | None]],
    echo: Callable[[str], None],
    *,
    caller: str | None = None,
    query: str = "",
) -> FakeCall:
    """One whole call: print what the caller hears, answer with ``next_keys`` until it ends.

    ``next_keys`` returns the keys to type (``-`` for silence) or None to hang up.
    """
    call = twilio.call(caller)
    echo(f"calling {twilio.base_url} from {call.caller} (CallSid {call.call_sid})")
    answer = await call.dial(query)
    while True:
        if answer.status != 200:
            echo(f"  [HTTP {answer.status}] {answer.body.strip()}")
            break
        for text in answer.says:
            echo(f"IVR: {text}")
        recording = answer.root.find("Record") is not None
        gather = answer.gather
        if gather is None and not recording:
            echo(_ending(answer))
            break
        echo(
            "  [beep: recording; answer rec:SECONDS to speak, - for silence]"
            if recording or gather is None  # not recording: a gather, or the call ended above
            else f"  [{_gather_hint(gather)}]"
        )
        keys = await next_keys(answer)
        if keys is None:
            echo("  [you hung up]")
            break
        if keys.startswith(SPEAK) and keys[len(SPEAK) :].isdigit():
            echo(f"YOU: (speak for {keys[len(SPEAK) :]} s, then press #; a simulated recording)")
            answer = await call.record(seconds=int(keys[len(SPEAK) :]))
            continue
        echo(f"YOU: {'(silence)' if keys == SILENCE else keys}")
        answer = await (call.stay_silent() if keys == SILENCE else call.press(keys))
    await call.hang_up(duration_s=0)
    return call


def _ending(answer: Twiml) -> str:
    if answer.root.find("Dial") is not None or answer.root.find("Enqueue") is not None:
        return "  [the IVR connects the caller elsewhere: the simulated call ends here]"
    return "  [the IVR hung up]" if answer.hangs_up else "  [nothing more to do]"


def _gather_hint(gather: ET.Element) -> str:
    silence = f"{gather.get('timeout')} s of silence counts as no answer"
    if gather.get("numDigits") == "1":
        return f"press one key; {silence}"
    return f"type keys, then {gather.get('finishOnKey') or 'wait'}; {silence}"
