"""Server-rendered pages for people (the agent's transfer page)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

__all__ = ["agent_page"]


async def agent_page(request: web.Request) -> web.Response:
    """``GET /agent``: sign in with an agent token, start a transfer, watch it live (data via the API)."""
    html = resources.files("ivr.staff").joinpath("static/agent.html").read_text(encoding="utf-8")
    return web.Response(text=html, content_type="text/html")  # its headers: ivr.ops.security_headers
