"""Engine instructions rendered as TwiML; the only module that builds ``VoiceResponse``.

Every question is a ``<Gather>`` with its prompts nested inside (callers may answer
before a prompt ends), followed by an explicit ``<Redirect>`` for silence: Twilio runs
the next verb when a Gather ends with no key, so no-input is never left implicit.
"""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from flows.model import Ask, End, Instruction

__all__ = ["ANSWER_PATH", "NO_INPUT_PATH", "TwimlRenderer"]

ANSWER_PATH = "/twilio/answer"
NO_INPUT_PATH = "/twilio/no-input"


class TwimlRenderer:
    """Renders instructions with absolute callback URLs under ``PUBLIC_BASE_URL``."""

    def __init__(self, public_base_url: str) -> None:
        self._base_url = public_base_url.rstrip("/")

    def render(self, instruction: Instruction) -> str:
        if isinstance(instruction, Ask):
            return self._ask(instruction)
        return self._end(instruction)

    def _ask(self, ask: Ask) -> str:
        response = VoiceResponse()
        gather = response.gather(
            action=f"{self._base_url}{ANSWER_PATH}?seq={ask.seq}",
            method="POST",
            input="dtmf",
            num_digits=ask.num_digits,
            timeout=ask.timeout_s,
            finish_on_key=ask.finish_on_key,
        )
        for text in ask.speech:
            gather.say(text, language=ask.language)
        response.redirect(f"{self._base_url}{NO_INPUT_PATH}?seq={ask.seq}", method="POST")
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
