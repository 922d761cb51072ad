"""How the JSON door answers when something goes wrong: ``{"error": message}`` and a status.

Services raise domain errors (``InvalidIdentifier``, ``TransferRefused``, …) that know
nothing of HTTP; this module maps each to its status (and headers: a refused event stream
is told when to retry), once. Anything unexpected is a 500 with no detail (the log has it).
"""

from __future__ import annotations

import json

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.call_control import CallControlError, CallControlFailure
from ivr.identifiers import InvalidIdentifier
from ivr.transfer_desk import Refusal, TransferRefused, UnknownTransfer
from ivr.transfer_feed import StreamLimitReached

__all__ = ["api_error", "error_middleware"]

log = structlog.get_logger(__name__)

_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    422: web.HTTPUnprocessableEntity,
    429: web.HTTPTooManyRequests,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
    504: web.HTTPGatewayTimeout,
}

# What an agent is told when Twilio would not move a call: is it their request, the
# call, or our configuration / Twilio's side that failed?
CALL_CONTROL_STATUS = {
    CallControlFailure.NOT_CONFIGURED: 503,
    CallControlFailure.UNKNOWN_CALL: 404,
    CallControlFailure.NOT_IN_PROGRESS: 409,
    CallControlFailure.RATE_LIMITED: 503,
    CallControlFailure.UPSTREAM: 502,
}
REFUSAL_STATUS = {
    Refusal.INVALID: 422,
    Refusal.NOT_ALLOWED: 422,
    Refusal.ALREADY_UNDER_WAY: 409,
    Refusal.CALL_NOT_MOVED: 502,
}
DomainError = InvalidIdentifier | TransferRefused | CallControlError | UnknownTransfer | StreamLimitReached


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.HTTPException:
    """An error for API clients: JSON ``{"error": message}`` with ``status``."""
    error_class = _ERRORS.get(status, web.HTTPBadRequest)
    return error_class(text=json.dumps({"error": message}), content_type="application/json", headers=headers)


def _status_of(exc: DomainError) -> int:
    if isinstance(exc, InvalidIdentifier):
        return 400
    if isinstance(exc, UnknownTransfer):
        return 404
    if isinstance(exc, StreamLimitReached):
        return 429
    if isinstance(exc, TransferRefused):
        cause = exc.__cause__
        if isinstance(cause, CallControlError):
            return CALL_CONTROL_STATUS[cause.failure]
        return REFUSAL_STATUS[exc.refusal]
    return CALL_CONTROL_STATUS[exc.failure]


def _headers_of(exc: DomainError) -> dict[str, str] | None:
    if isinstance(exc, StreamLimitReached):
        return {"Retry-After": str(exc.retry_after_s)}
    return None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (InvalidIdentifier, TransferRefused, CallControlError, UnknownTransfer, StreamLimitReached) as exc:
        raise api_error(_status_of(exc), exc.message, headers=_headers_of(exc)) from exc
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        return web.json_response({"error": "internal error"}, status=500)
