"""Serving and recording the metrics: the webhook timing middleware and ``GET /metrics``."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ivr.keys import METRICS, PG_POOL
from storage.recordings import pending_fetches

__all__ = ["metrics_middleware", "metrics_page"]


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/twilio/"):
        return await handler(request)
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unknown"
        request.app[METRICS].webhook_seconds.labels(route).observe(time.perf_counter() - started)


async def metrics_page(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format. Expose it on the internal network only."""
    metrics = request.app[METRICS]
    pool = request.app[PG_POOL]
    metrics.pool_size.set(pool.get_size())
    metrics.pool_in_use.set(pool.get_size() - pool.get_idle_size())
    async with pool.acquire() as conn:
        metrics.recording_backlog.set(await pending_fetches(conn))
    return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
