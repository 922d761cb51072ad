"""The voice door: the sub-application Twilio calls under ``/twilio``.

Its middlewares are the ones a webhook needs, and only those: timing (when metrics are
on) and the spoken apology for anything unexpected. Signatures are checked by each
handler before it reads anything else of the request.
"""

from __future__ import annotations

from aiohttp import web

from ivr.settings import Settings
from ivr.voice.errors import error_middleware
from ivr.voice.routes import PREFIX, setup_routes
from ivr.voice.timing import timing_middleware

__all__ = ["PREFIX", "voice_app"]


def voice_app(settings: Settings) -> web.Application:
    timing = [timing_middleware] if settings.metrics_enabled else []
    app = web.Application(middlewares=[*timing, error_middleware])
    setup_routes(app)
    return app
