"""The application factory: resources, middlewares, routes — nothing else."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ivr import keys
from ivr.auth import auth_middleware, page_middleware
from ivr.errors import error_middleware
from ivr.forwarded import forwarded_middleware
from ivr.keys import METRICS
from ivr.metrics import Metrics
from ivr.observability import metrics_middleware
from ivr.resources import (
    call_desk_ctx,
    postgres_ctx,
    postgres_server_ctx,
    recordings_ctx,
    redis_ctx,
    redis_server_ctx,
    transfers_ctx,
)
from ivr.routes import setup_routes
from ivr.settings import Settings

__all__ = ["create_app"]

# Twilio's webhook bodies are a few KB; the API takes small JSON documents.
CLIENT_MAX_SIZE = 256 * 1024


def create_app(settings: Settings) -> web.Application:
    timing = [metrics_middleware] if settings.metrics_enabled else []
    app = web.Application(
        middlewares=[forwarded_middleware, *timing, error_middleware, auth_middleware, page_middleware],
        client_max_size=CLIENT_MAX_SIZE,
    )
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("ivr", "templates"), autoescape=True)
    app[keys.SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.extend(
        [postgres_server_ctx, redis_server_ctx, postgres_ctx, redis_ctx, recordings_ctx, transfers_ctx, call_desk_ctx]
    )
    setup_routes(app)
    return app
