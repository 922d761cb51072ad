"""How the pages door answers an unexpected failure: a plain page, never a stack trace."""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["error_middleware"]

log = structlog.get_logger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("page_failed", path=request.path, method=request.method)
        return web.Response(status=500, text="Something went wrong on our side; nothing was changed. Try again.")
