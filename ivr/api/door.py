"""The JSON door: the sub-application under ``/api`` for agents, staff and integrations.

Its middlewares, outermost first: domain errors and anything unexpected become JSON
errors; then a live bearer token with the route's role.
"""

from __future__ import annotations

from aiohttp import web

from ivr.api.auth import bearer_middleware
from ivr.api.errors import error_middleware
from ivr.api.events import EVENT_STREAMS, MAX_EVENT_STREAMS, StreamSlots
from ivr.api.routes import PREFIX, setup_routes

__all__ = ["PREFIX", "api_app"]


def api_app() -> web.Application:
    app = web.Application(middlewares=[error_middleware, bearer_middleware])
    app[EVENT_STREAMS] = StreamSlots(MAX_EVENT_STREAMS)  # per process: each idle stream polls
    setup_routes(app)
    return app
