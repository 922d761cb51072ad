"""The application factory: the root's resources and endpoints, and the three doors mounted.

Each door is a sub-application with only the middlewares it needs (aiohttp's advice for
large applications): ``/twilio`` (voice), ``/api`` (JSON), ``/staff`` (pages). The root
keeps what every door shares — resources opened in ``cleanup_ctx``, the client address
behind a trusted proxy, a fresh log context per request — and the probes and metrics.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web

from ivr import appkeys
from ivr.access.proxies import forwarded_middleware
from ivr.api.door import PREFIX as API_PREFIX
from ivr.api.door import api_app
from ivr.integrations.context import deliveries_ctx
from ivr.integrations.nats_context import jetstream_ctx
from ivr.ops.endpoints import healthz, metrics_page, readyz
from ivr.ops.logs import fresh_log_context
from ivr.ops.metrics import Metrics
from ivr.ops.security_headers import read_body_in_time, set_security_headers
from ivr.resources import (
    checkpoints_ctx,
    evidence_ctx,
    postgres_ctx,
    postgres_server_ctx,
    recordings_ctx,
    redis_ctx,
    redis_server_ctx,
    transfers_ctx,
)
from ivr.settings import Settings
from ivr.staff.agent_page import agent_page
from ivr.staff.assets import asset
from ivr.staff.door import PREFIX as STAFF_PREFIX
from ivr.staff.door import staff_app
from ivr.voice.context import call_desk_ctx
from ivr.voice.door import PREFIX as VOICE_PREFIX
from ivr.voice.door import voice_app

__all__ = ["create_app", "routes_of"]

# Twilio's webhook bodies are a few KB; the API takes small JSON documents.
CLIENT_MAX_SIZE = 256 * 1024


def create_app(settings: Settings) -> web.Application:
    proxies = [forwarded_middleware] if settings.trusted_proxies else []
    app = web.Application(middlewares=[*proxies, fresh_log_context, read_body_in_time], client_max_size=CLIENT_MAX_SIZE)
    app.on_response_prepare.append(set_security_headers)
    app[appkeys.SETTINGS] = settings
    app[appkeys.METRICS] = Metrics()
    app.cleanup_ctx.extend(
        [
            postgres_server_ctx,
            redis_server_ctx,
            postgres_ctx,
            checkpoints_ctx,
            redis_ctx,
            recordings_ctx,
            evidence_ctx,
            transfers_ctx,
            call_desk_ctx,
            deliveries_ctx,  # last: it stops first, before the database it reads from
            jetstream_ctx,  # likewise (does nothing without EVENTS_NATS_URL)
        ]
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if settings.metrics_enabled:
        app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/agent", agent_page)
    app.router.add_get("/assets/{name}", asset)
    app.add_subapp(VOICE_PREFIX, voice_app(settings))
    app.add_subapp(API_PREFIX, api_app())
    app.add_subapp(STAFF_PREFIX, staff_app())
    return app


def routes_of(app: web.Application) -> Iterator[web.AbstractRoute]:
    """Every route of the application, the doors' included (their paths with the prefix)."""
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            yield from routes_of(resource.get_info()["app"])
            continue
        yield from resource
