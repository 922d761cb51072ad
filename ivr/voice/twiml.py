"""Engine instructions rendered as TwiML; the only module that builds ``VoiceResponse``.

Every question is a ``<Gather>`` with its prompts nested inside (callers may answer
before a prompt ends) — except a legal notice, said before the ``<Gather>`` so it is
heard whole — followed by an explicit ``<Redirect>`` for silence: Twilio runs
the next verb when a Gather ends with no key, so no-input is never left implicit.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace

from aiohttp import web
from twilio.twiml.voice_response import Dial, VoiceResponse

from flows.model import Ask, Connect, End, Instruction, Record

__all__ = [
    "ANSWER_PATH",
    "CONNECTED_PATH",
    "NO_INPUT_PATH",
    "RECORDING_PATH",
    "RECORDING_STATUS_PATH",
    "TwimlRenderer",
    "twiml_response",
]

ANSWER_PATH = "/twilio/answer"
NO_INPUT_PATH = "/twilio/no-input"
RECORDING_PATH = "/twilio/recording"
RECORDING_STATUS_PATH = "/twilio/recording-status"
CONNECTED_PATH = "/twilio/connected"
# How long a transfer or return rings before it counts as "no-answer".
RING_TIMEOUT_S = 30
# Answers differ from call to call mostly in the prompt number of their callback URLs:
# each instruction is rendered once (by VoiceResponse, escaping and all) with this
# impossible number there, and the real one put in its place afterwards.
_SEQ_MARK = -7_310_000_913
# Distinct instructions kept rendered: every prompt of every flow and language, with
# room for read-backs that quote what a caller keyed in.
RENDERED_KEPT = 4096


class TwimlRenderer:
    """Renders instructions with absolute callback URLs under ``PUBLIC_BASE_URL``.

    ``destinations`` maps the logical names flows use (``agents``) to concrete
    targets from the deployment's settings.
    """

    def __init__(self, public_base_url: str, destinations: Mapping[str, str] | None = None) -> None:
        self._base_url = public_base_url.rstrip("/")
        self._destinations = dict(destinations or {})
        self._rendered = functools.lru_cache(maxsize=RENDERED_KEPT)(self._render)

    def render(self, instruction: Instruction) -> str:
        if isinstance(instruction, End):
            return self._rendered(instruction)
        template = self._rendered(replace(instruction, seq=_SEQ_MARK))
        return template.replace(f"seq={_SEQ_MARK}", f"seq={instruction.seq}")

    def _render(self, instruction: Instruction) -> str:
        if isinstance(instruction, Ask):
            return self._ask(instruction)
        if isinstance(instruction, Record):
            return self._record(instruction)
        if isinstance(instruction, Connect):
            return self._connect(instruction)
        return self._end(instruction)

    def _ask(self, ask: Ask) -> str:
        response = VoiceResponse()
        for text in ask.speech[: ask.fixed]:  # a notice: heard whole, before keys are listened for
            response.say(text, language=ask.language)
        gather = response.gather(
            action=f"{self._base_url}{ANSWER_PATH}?seq={ask.seq}",
            method="POST",
            input="dtmf",
            num_digits=ask.num_digits,
            timeout=ask.timeout_s,
            finish_on_key=ask.finish_on_key,
        )
        for text in ask.speech[ask.fixed :]:
            gather.say(text, language=ask.language)
        response.redirect(f"{self._base_url}{NO_INPUT_PATH}?seq={ask.seq}", method="POST")
        return str(response)

    def _record(self, record: Record) -> str:
        response = VoiceResponse()
        for text in record.speech:
            response.say(text, language=record.language)
        response.record(
            action=f"{self._base_url}{RECORDING_PATH}?seq={record.seq}",
            method="POST",
            max_length=record.max_length_s,
            timeout=record.timeout_s,
            finish_on_key=record.finish_on_key,
            play_beep=True,
            trim="trim-silence",
            recording_status_callback=f"{self._base_url}{RECORDING_STATUS_PATH}",
            recording_status_callback_method="POST",
        )
        # An empty recording makes no action request: Twilio runs the next verb.
        response.redirect(f"{self._base_url}{NO_INPUT_PATH}?seq={record.seq}", method="POST")
        return str(response)

    def _connect(self, connect: Connect) -> str:
        response = VoiceResponse()
        for text in connect.speech:
            response.say(text, language=connect.language)
        target = self._destinations.get(connect.destination, connect.destination)
        action = f"{self._base_url}{CONNECTED_PATH}?seq={connect.seq}"
        kind, _, name = target.partition(":")
        if kind == "queue":
            response.enqueue(name, action=action, method="POST")
            return str(response)
        dial = Dial(action=action, method="POST", timeout=RING_TIMEOUT_S)
        if kind == "client":
            dial.client(name)
        elif kind == "sip":
            dial.sip(target)
        else:
            dial.number(target)
        response.append(dial)
        return str(response)

    def _end(self, end: End) -> str:
        response = VoiceResponse()
        for text in end.speech:
            response.say(text, language=end.language)
        response.hangup()
        return str(response)

    @staticmethod
    def empty() -> str:
        """An answer with nothing to do, for callbacks whose body Twilio ignores."""
        return str(VoiceResponse())


def twiml_response(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml", charset="utf-8")
