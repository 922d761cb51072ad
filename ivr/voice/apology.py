"""The words a caller hears when the service cannot go on: rendered from the flow's messages."""

from __future__ import annotations

from flows.model import End, Flow
from ivr.voice.twiml import TwimlRenderer

__all__ = ["SYSTEM_ERROR", "UNKNOWN_CALL", "flow_message"]

SYSTEM_ERROR = "system_error"  # "a technical problem: nothing was recorded, please call again"
UNKNOWN_CALL = "unknown_call"  # a webhook for a call this service has no session of


def flow_message(renderer: TwimlRenderer, flow: Flow, key: str, lang: str | None = None) -> str:
    """TwiML that says one of the flow's messages and hangs up."""
    lang = lang or flow.default_language
    text = flow.messages[key].text(lang)
    return renderer.render(End(speech=(text,), language=flow.languages[lang]))
