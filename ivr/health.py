"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from ivr.keys import PG_POOL, REDIS

__all__ = ["healthz", "readyz"]

# A probe that waits longer than this is itself a sign the dependency is unwell.
PROBE_TIMEOUT_S = 1.0


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers (and which worker process answered)."""
    return web.json_response({"status": "ok", "pid": os.getpid()})


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


async def _probe(check: object) -> str:
    try:
        await asyncio.wait_for(check, PROBE_TIMEOUT_S)  # type: ignore[arg-type]
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return f"error: {type(exc).__name__}"
    return "ok"
