"""Turning unexpected failures into answers that are safe for whoever asked.

Twilio must never get a 500 or a stack trace: the caller would hear Twilio's stock
"application error". Any unexpected failure on a ``/twilio/`` route answers with the
flow's spoken apology, which says nothing was recorded (true: evidence is committed
before any confirmation is rendered, so a failure means no confirmation was given).
"""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.keys import CALL_DESK
from ivr.webhooks import twiml_response

__all__ = ["error_middleware"]

log = structlog.get_logger(__name__)
TWILIO_PREFIX = "/twilio/"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # A keep-alive connection serves its requests in one task: start each one unlabelled.
    structlog.contextvars.clear_contextvars()
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        if request.path.startswith(TWILIO_PREFIX):
            return twiml_response(request.app[CALL_DESK].system_error())
        return web.json_response({"error": "internal error"}, status=500)
