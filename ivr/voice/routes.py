"""The voice door's URL table (paths relative to ``/twilio``), and nothing else."""

from __future__ import annotations

from aiohttp import web

from ivr.voice import webhooks
from ivr.voice.twiml import ANSWER_PATH, CONNECTED_PATH, NO_INPUT_PATH, RECORDING_PATH, RECORDING_STATUS_PATH

__all__ = ["PREFIX", "STATUS_PATH", "VOICE_PATH", "setup_routes"]

PREFIX = "/twilio"
VOICE_PATH = f"{PREFIX}/voice"
STATUS_PATH = f"{PREFIX}/status"


def _relative(path: str) -> str:
    return path.removeprefix(PREFIX)


def setup_routes(app: web.Application) -> None:
    app.router.add_post(_relative(VOICE_PATH), webhooks.incoming_call)
    app.router.add_post(_relative(ANSWER_PATH), webhooks.answer)
    app.router.add_post(_relative(NO_INPUT_PATH), webhooks.no_input)
    app.router.add_post(_relative(RECORDING_PATH), webhooks.recording)
    app.router.add_post(_relative(RECORDING_STATUS_PATH), webhooks.recording_status)
    app.router.add_post(_relative(CONNECTED_PATH), webhooks.connected)
    app.router.add_post(_relative(STATUS_PATH), webhooks.call_status)
