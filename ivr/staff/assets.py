"""``GET /assets/{name}``: the pages' own stylesheets and script (the only code they load)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

__all__ = ["asset"]

# Named one by one: nothing else under the package is reachable from here.
_ASSETS = {
    "staff.css": "text/css",
    "agent.css": "text/css",
    "agent.js": "text/javascript",
}


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound(text="no such asset")
    body = resources.files("ivr.staff").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=_ASSETS[name], charset="utf-8")
