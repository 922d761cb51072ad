"""The root's own endpoints: liveness and readiness probes, and the Prometheus page."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ivr.appkeys import METRICS, PG_POOL, REDIS, SETTINGS
from ivr.integrations.deadline_watch import business_today
from ivr.time_budget import POOL_ACQUIRE_S
from storage.recordings import pending_fetches
from storage.revocations_due import count_overdue

__all__ = ["healthz", "metrics_page", "readyz"]

# Which worker process answered, without telling the world its pid: chosen at start.
WORKER_ID = secrets.token_hex(4)
# A probe that waits longer than this is itself a sign the dependency is unwell.
PROBE_TIMEOUT_S = 1.0


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers (and which worker process answered)."""
    return web.json_response({"status": "ok", "worker": WORKER_ID})


async def readyz(request: web.Request) -> web.Response:
    """Postgres and Redis both answer: this process can take calls."""
    checks = {
        "postgres": await _probe(request.app[PG_POOL].fetchval("SELECT 1")),
        "redis": await _probe(request.app[REDIS].ping()),
    }
    ready = all(result == "ok" for result in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


async def _probe(check: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(check, PROBE_TIMEOUT_S)
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return f"error: {type(exc).__name__}"
    return "ok"


async def metrics_page(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format. Expose it on the internal network only,
    and with METRICS_TOKEN set, to the scraper holding it only."""
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode()):
            raise web.HTTPUnauthorized(
                text="a bearer token (METRICS_TOKEN) is needed", headers={"WWW-Authenticate": "Bearer"}
            )
    metrics = request.app[METRICS]
    pool = request.app[PG_POOL]
    metrics.pool_size.set(pool.get_size())
    metrics.pool_in_use.set(pool.get_size() - pool.get_idle_size())
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
        metrics.recording_backlog.set(await pending_fetches(conn))
        today = business_today(request.app[SETTINGS].business_timezone)
        metrics.revocations_overdue.set(await count_overdue(conn, today))
    return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
