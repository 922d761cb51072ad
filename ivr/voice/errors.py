"""Turning unexpected failures on a webhook into words that are safe for the caller.

Twilio must never get a 500 or a stack trace: the caller would hear Twilio's stock
"application error". Any unexpected failure answers with the default flow's spoken
apology, which says nothing was recorded (true: evidence is committed before any
confirmation is rendered — docs/architecture.md, rule 1 — so a failure means no
confirmation was given). Refusals (403 forged, 400 malformed) pass through unchanged.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.appkeys import FLOWS, METRICS
from ivr.voice.apology import SYSTEM_ERROR, flow_message
from ivr.voice.context import RENDERER
from ivr.voice.twiml import twiml_response

__all__ = ["error_middleware"]

log = structlog.get_logger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("webhook_failed", path=request.path, method=request.method)
        request.config_dict[METRICS].system_errors.labels("unexpected").inc()
        flows = request.config_dict[FLOWS]
        return twiml_response(flow_message(request.config_dict[RENDERER], flows.default, SYSTEM_ERROR))
