"""The pages door: the sub-application under ``/staff`` for people with a browser.

Its middlewares, outermost first: a plain error page for anything unexpected; then the
signed-in session, the page's role and the CSRF check.
"""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ivr.staff.errors import error_middleware
from ivr.staff.routes import PREFIX, setup_routes
from ivr.staff.sign_in import session_middleware

__all__ = ["PREFIX", "staff_app"]


def staff_app() -> web.Application:
    app = web.Application(middlewares=[error_middleware, session_middleware])
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("ivr.staff", "templates"), autoescape=True)
    setup_routes(app)
    return app
