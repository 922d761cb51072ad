"""How long each webhook takes, by route: the voice door's timing middleware."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.appkeys import METRICS

__all__ = ["timing_middleware"]


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unknown"
        request.config_dict[METRICS].webhook_seconds.labels(route).observe(time.perf_counter() - started)
